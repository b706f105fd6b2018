"""Users' tokens: encrypted at rest, refreshed single-flight, re-encrypted on key rotation."""
