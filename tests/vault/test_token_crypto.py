"""TokenCipher: round trip, key validation, rotation, tampering and context binding."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.secrets import Secret
from receiver.settings import ConfigError
from receiver.vault.crypto import TokenCipher, TokenDecryptError, generate_key

KEY_A = generate_key()
KEY_B = generate_key()
CIPHER_A = TokenCipher([Secret(KEY_A)])


def test_generated_key_is_32_bytes_of_urlsafe_base64() -> None:
    key = generate_key()
    assert len(key) == 44
    assert len(base64.urlsafe_b64decode(key)) == 32
    assert generate_key() != key


def test_round_trip() -> None:
    blob = CIPHER_A.encrypt(b"act.secret|rft.secret", context="ck:user-1")
    assert b"secret" not in blob
    assert CIPHER_A.decrypt(blob, context="ck:user-1") == b"act.secret|rft.secret"


@given(plaintext=st.binary(max_size=512), context=st.text(max_size=64))
def test_round_trip_any_input(plaintext: bytes, context: str) -> None:
    assert CIPHER_A.decrypt(CIPHER_A.encrypt(plaintext, context=context), context=context) == (
        plaintext
    )


def test_each_encryption_uses_a_fresh_nonce() -> None:
    first = CIPHER_A.encrypt(b"same", context="ck:u")
    second = CIPHER_A.encrypt(b"same", context="ck:u")
    assert first != second


def test_key_without_padding_is_accepted() -> None:
    cipher = TokenCipher([Secret(KEY_A.rstrip("="))])
    assert cipher.decrypt(CIPHER_A.encrypt(b"x", context="c"), context="c") == b"x"


@pytest.mark.parametrize(
    "bad_key",
    [
        "not base64 at all!",
        base64.urlsafe_b64encode(b"\x01" * 16).decode(),  # AES-128 length
        base64.urlsafe_b64encode(b"\x02" * 33).decode(),
        "",
    ],
)
def test_malformed_key_is_a_config_error_that_does_not_echo_it(bad_key: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        TokenCipher([Secret(KEY_A), Secret(bad_key)])
    message = str(excinfo.value)
    assert "TOKEN_ENCRYPTION_KEYS entry #2" in message
    assert "keygen" in message
    if bad_key:
        assert bad_key not in message


def test_no_keys_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="TOKEN_ENCRYPTION_KEYS is empty"):
        TokenCipher([])


def test_duplicate_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="repeats an earlier key"):
        TokenCipher([Secret(KEY_A), Secret(KEY_B), Secret(KEY_A)])


def test_repr_shows_no_key() -> None:
    text = repr(CIPHER_A) + str(CIPHER_A)
    assert KEY_A not in text
    assert KEY_A.rstrip("=") not in text
    assert "keys=1" in text


def test_rotation_old_key_still_decrypts_and_reencryption_moves_to_new_key() -> None:
    old_blob = CIPHER_A.encrypt(b"payload", context="ck:u")
    rotated = TokenCipher([Secret(KEY_B), Secret(KEY_A)])

    assert rotated.decrypt(old_blob, context="ck:u") == b"payload"
    assert rotated.needs_reencryption(old_blob)
    new_blob = rotated.encrypt(rotated.decrypt(old_blob, context="ck:u"), context="ck:u")
    assert not rotated.needs_reencryption(new_blob)

    only_new = TokenCipher([Secret(KEY_B)])
    assert only_new.decrypt(new_blob, context="ck:u") == b"payload"
    with pytest.raises(TokenDecryptError, match="not in TOKEN_ENCRYPTION_KEYS"):
        only_new.decrypt(old_blob, context="ck:u")


def test_wrong_key_fails_cleanly() -> None:
    blob = CIPHER_A.encrypt(b"payload", context="ck:u")
    with pytest.raises(TokenDecryptError) as excinfo:
        TokenCipher([Secret(KEY_B)]).decrypt(blob, context="ck:u")
    assert KEY_A not in str(excinfo.value)
    assert KEY_B not in str(excinfo.value)


def test_blob_is_bound_to_its_context() -> None:
    blob = CIPHER_A.encrypt(b"payload", context="ck:alice")
    with pytest.raises(TokenDecryptError, match="another record"):
        CIPHER_A.decrypt(blob, context="ck:mallory")


@pytest.mark.parametrize(
    "position",
    [0, 1, 5, 10, 17, 20, -1],
    ids=["version", "key-id", "key-id-end", "nonce", "ciphertext", "ciphertext-2", "tag"],
)
def test_any_altered_byte_is_detected(position: int) -> None:
    blob = bytearray(CIPHER_A.encrypt(b"a payload of some length", context="ck:u"))
    blob[position] ^= 0x01
    with pytest.raises(TokenDecryptError):
        CIPHER_A.decrypt(bytes(blob), context="ck:u")


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x01" + b"\x00" * 20, b"garbage" * 10])
def test_truncated_or_foreign_blobs_fail_cleanly(blob: bytes) -> None:
    with pytest.raises(TokenDecryptError):
        CIPHER_A.decrypt(blob, context="ck:u")
