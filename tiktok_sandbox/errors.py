"""Exceptions that carry a TikTok error code; each endpoint renders them in its own shape."""

from __future__ import annotations


class OAuthError(Exception):
    """An OAuth v2 error: `{"error", "error_description", "log_id"}` (contract §2.4).

    `status` None means "the endpoint's usual status" (400, or the configured one for
    invalid_client).
    """

    def __init__(self, error: str, description: str, status: int | None = None) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


class ApiError(Exception):
    """A v2 API error: `{"data": {}, "error": {"code", "message", "log_id"}}` (contract §4)."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class AdminError(Exception):
    """An admin API error: `{"error": {"code", "message"}}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


MISMATCHED_REDIRECT = "Redirect_uri is not matched with the uri when requesting code."
BAD_PKCE = "Code verifier or code challenge is invalid."
# The texts of captured TikTok answers (the docs' examples differ slightly).
ACCESS_TOKEN_INVALID = "The access token is invalid or not found in the request."
INVALID_CLIENT = "Client key or secret is incorrect."
RATE_LIMITED = "The API rate limit was exceeded. Please try again later."
