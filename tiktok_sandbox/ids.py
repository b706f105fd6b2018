"""Random identifiers shaped like TikTok's, and the PKCE S256 transform."""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
import time

_ALNUM = string.ascii_letters + string.digits


def _alnum(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def _region_suffix() -> str:
    # Real tokens have been seen ending in `!NNNN.va` and codes holding `*`; keeping such
    # characters makes a client that forgets to URL-encode or -decode fail here first.
    return f"!{secrets.randbelow(10_000):04d}.va"


def new_access_token() -> str:
    return f"act.{secrets.token_hex(16)}{_alnum(32)}{_region_suffix()}"


def new_refresh_token() -> str:
    return f"rft.{secrets.token_hex(16)}{_alnum(32)}{_region_suffix()}"


def new_code() -> str:
    return f"{_alnum(48)}*0{_region_suffix()}"


def new_open_id() -> str:
    """36 characters with a leading '-', like real open_ids (`-000NAdxlHusXRGvLc05cl…`):
    every test meets an id that a careless command-line parser takes for an option."""
    return "-000" + _alnum(32)


def new_publish_id(inbox: bool) -> str:
    """`v_inbox_file~v2.<19 digits>` (upload to inbox) or `v_pub_file~v2.<19 digits>`."""
    return f"{'v_inbox_file' if inbox else 'v_pub_file'}~v2.{_digits19()}"


def new_post_id() -> int:
    """A 19-digit post (video) id: more than a double holds exactly, as TikTok's are."""
    return int(_digits19())


def new_data_request_id() -> int:
    return 10**14 + secrets.randbelow(9 * 10**14)


def _digits19() -> str:
    return "7" + "".join(secrets.choice(string.digits) for _ in range(18))


def new_request_id() -> str:
    return secrets.token_urlsafe(24)


def new_log_id(now: float) -> str:
    """`20220829194722CBE87ED59D524E727021`: UTC timestamp plus 20 hex digits, like TikTok's."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(now)) + secrets.token_hex(10).upper()


def pkce_s256(code_verifier: str) -> str:
    """base64url(SHA256(verifier)) without padding, as RFC 7636 and TikTok's web flow use."""
    digest = hashlib.sha256(code_verifier.encode("ascii", errors="replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def is_s256_challenge(value: str) -> bool:
    """A SHA256 digest in unpadded base64url is exactly 43 characters of that alphabet."""
    allowed = set(_ALNUM + "-_")
    return len(value) == 43 and all(ch in allowed for ch in value)
