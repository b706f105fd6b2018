from __future__ import annotations

import pytest

from receiver.ingest.signature import (
    SignatureError,
    compute_signature,
    parse_signature_header,
    signature_header,
    verify_signature,
)
from receiver.secrets import Secret
from tests.contract_vector import VECTOR_BODY, VECTOR_HEADER, VECTOR_S, VECTOR_SECRET, VECTOR_T

SECRETS = (Secret(VECTOR_SECRET),)


def test_documented_vector() -> None:
    assert compute_signature(VECTOR_SECRET, VECTOR_T, VECTOR_BODY) == VECTOR_S
    assert signature_header(VECTOR_SECRET, VECTOR_BODY, VECTOR_T) == VECTOR_HEADER
    assert (
        verify_signature(VECTOR_HEADER, VECTOR_BODY, SECRETS, tolerance_seconds=300, now=VECTOR_T)
        == VECTOR_T
    )


def test_header_as_bytes_and_uppercase_hex() -> None:
    header = f"t={VECTOR_T},s={VECTOR_S.upper()}".encode()
    assert verify_signature(header, VECTOR_BODY, SECRETS, tolerance_seconds=300, now=VECTOR_T)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("t=", "malformed"),
        ("s=", "malformed"),
        ("t=abc,s=x", "malformed"),
        (f"t={VECTOR_T}", "malformed"),
        (f"s={VECTOR_S}", "malformed"),
        (f"t={VECTOR_T},s={VECTOR_S[:-1]}", "malformed"),
        (f"t={VECTOR_T},s={VECTOR_S[:-1]}g", "malformed"),
        (f"t={VECTOR_T},t={VECTOR_T},s={VECTOR_S}", "malformed"),
        (f"t=-{VECTOR_T},s={VECTOR_S}", "malformed"),
        (f"t={VECTOR_T}.5,s={VECTOR_S}", "malformed"),
        ("t=99999999999999999999,s=" + "0" * 64, "malformed"),
        (f"t={VECTOR_T};s={VECTOR_S}", "malformed"),
        ("garbage", "malformed"),
        (",,,", "malformed"),
        ("t=1,s=" + ",s=".join(["0" * 64] * 9), "malformed"),
        ("t=1,s=" + "a" * 5000, "malformed"),
        ("\xff\xfe", "malformed"),
        (f"t={VECTOR_T},s={'0' * 64}", "mismatch"),
    ],
)
def test_rejections(header: str | None, reason: str) -> None:
    with pytest.raises(SignatureError) as info:
        verify_signature(header, VECTOR_BODY, SECRETS, tolerance_seconds=300, now=VECTOR_T)
    assert info.value.reason == reason


def test_any_of_several_signatures_may_match() -> None:
    header = f"t={VECTOR_T},s={'0' * 64},s={VECTOR_S}"
    assert verify_signature(header, VECTOR_BODY, SECRETS, tolerance_seconds=300, now=VECTOR_T)


def test_unknown_elements_are_ignored() -> None:
    header = f"v=2,t={VECTOR_T},s={VECTOR_S}"
    assert verify_signature(header, VECTOR_BODY, SECRETS, tolerance_seconds=300, now=VECTOR_T)


def test_body_changed_by_one_byte_fails() -> None:
    with pytest.raises(SignatureError) as info:
        verify_signature(
            VECTOR_HEADER, VECTOR_BODY + b" ", SECRETS, tolerance_seconds=300, now=VECTOR_T
        )
    assert info.value.reason == "mismatch"


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_within_tolerance_both_directions(offset: int) -> None:
    assert verify_signature(
        VECTOR_HEADER, VECTOR_BODY, SECRETS, tolerance_seconds=300, now=VECTOR_T + offset
    )


@pytest.mark.parametrize("offset", [-301, 301, 86400])
def test_outside_tolerance_both_directions(offset: int) -> None:
    with pytest.raises(SignatureError) as info:
        verify_signature(
            VECTOR_HEADER, VECTOR_BODY, SECRETS, tolerance_seconds=300, now=VECTOR_T + offset
        )
    assert info.value.reason == "stale"
    assert info.value.timestamp == VECTOR_T


def test_stale_is_only_reported_for_correct_signatures() -> None:
    header = f"t={VECTOR_T},s={'0' * 64}"
    with pytest.raises(SignatureError) as info:
        verify_signature(header, VECTOR_BODY, SECRETS, tolerance_seconds=300, now=VECTOR_T + 999)
    assert info.value.reason == "mismatch"


def test_secret_rotation_any_configured_secret_verifies() -> None:
    rotated = (Secret("new_secret"), Secret(VECTOR_SECRET))
    assert verify_signature(
        VECTOR_HEADER, VECTOR_BODY, rotated, tolerance_seconds=300, now=VECTOR_T
    )
    new_header = signature_header("new_secret", VECTOR_BODY, VECTOR_T)
    assert verify_signature(new_header, VECTOR_BODY, rotated, tolerance_seconds=300, now=VECTOR_T)
    with pytest.raises(SignatureError):
        verify_signature(
            new_header, VECTOR_BODY, (Secret(VECTOR_SECRET),), tolerance_seconds=300, now=VECTOR_T
        )


def test_error_text_reveals_no_secret() -> None:
    with pytest.raises(SignatureError) as info:
        verify_signature(
            f"t={VECTOR_T},s={'0' * 64}", VECTOR_BODY, SECRETS, tolerance_seconds=300, now=VECTOR_T
        )
    assert VECTOR_SECRET not in str(info.value)
    assert VECTOR_S not in str(info.value)


def test_parse_returns_all_candidates_lowercased() -> None:
    t, sigs = parse_signature_header(f" t={VECTOR_T} , s={VECTOR_S.upper()},s={'1' * 64}")
    assert t == VECTOR_T
    assert sigs == (bytes.fromhex(VECTOR_S), b"\x11" * 32)


def test_secret_never_shows_in_repr() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret}"
    assert secret == "hunter2"
    assert secret.reveal() == "hunter2"
