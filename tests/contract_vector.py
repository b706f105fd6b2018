"""The contract's signature test vector (docs/tiktok-contract.md, section 1.4)."""

# Computed with Python's hmac; not an official TikTok vector.
VECTOR_SECRET = "test_client_secret"
VECTOR_T = 1615338610
VECTOR_BODY = (
    b'{"client_key":"bwo2m45353a6k85","event":"authorization.removed","create_time":1615338610,'
    b'"user_openid":"act.example12345Example12345Example","content":"{\\"reason\\": 1 }"}'
)
VECTOR_S = "15ed02f792bc39e0e5958b4e8ff4151d28449cebda8e23079f9401c6bdd063ca"
VECTOR_HEADER = f"t={VECTOR_T},s={VECTOR_S}"
