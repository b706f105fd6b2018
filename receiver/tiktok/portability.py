"""Data Portability API: add, check, cancel and a streamed download (followup-apis §3).

The download is written to a temporary file next to its destination while the sha256 is
computed, then renamed into place: a reader never sees half an archive, and the archive
is never held in memory. Whether the answer is the ZIP or a JSON error is told by its
first bytes (TikTok documents neither the content type nor the size).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import zipfile
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from receiver.secrets import Secret
from receiver.tiktok import responses as answers
from receiver.tiktok.client import TikTokClient
from receiver.tiktok.errors import TikTokError, TransientError
from receiver.tiktok.ids import as_json_number, decimal_id

DATA_ADD_PATH: Final = "/v2/user/data/add/"
DATA_CHECK_PATH: Final = "/v2/user/data/check/"
DATA_DOWNLOAD_PATH: Final = "/v2/user/data/download/"
DATA_CANCEL_PATH: Final = "/v2/user/data/cancel/"
CATEGORIES: Final = ("all_data", "video", "profile", "activity", "direct_message")
FORMATS: Final = ("json", "text")
CHECK_FIELDS: Final = (
    "request_id,apply_time,collect_time,status,data_format,category_selection_list"
)
ZIP_MAGIC: Final = (b"PK\x03\x04", b"PK\x05\x06")  # an archive, or an empty one
_CHUNK: Final = 64 * 1024
_MAX_ERROR_BODY: Final = 64 * 1024


class ArchiveTooLarge(TikTokError):
    """The archive is bigger than PORTABILITY_MAX_BYTES; nothing was kept."""

    default_hint = "Raise PORTABILITY_MAX_BYTES (and check the disk) to download it."


class DataRequestStatus(msgspec.Struct, frozen=True, kw_only=True):
    status: str | None = None
    apply_time: int | None = None
    collect_time: int | None = None
    data_format: str | None = None
    categories: tuple[str, ...] = ()


class Archive(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    size: int
    sha256: str


async def add_data_request(
    client: TikTokClient, access_token: Secret, categories: Sequence[str], data_format: str
) -> str:
    """Ask TikTok to collect the user's data; the request id, as a decimal string."""
    data = await client.api_post(
        "data_add",
        DATA_ADD_PATH,
        access_token,
        {"data_format": data_format, "category_selection_list": list(categories)},
        params={"fields": "request_id"},
    )
    request_id = decimal_id(data.get("request_id"))
    if request_id is None:
        raise TransientError("invalid_response", "no request_id in the answer", endpoint="data_add")
    return request_id


async def check_data_request(
    client: TikTokClient, access_token: Secret, request_id: str
) -> DataRequestStatus:
    data = await client.api_post(
        "data_check",
        DATA_CHECK_PATH,
        access_token,
        {"request_id": as_json_number(request_id)},
        params={"fields": CHECK_FIELDS},
    )
    raw_categories = data.get("category_selection_list")
    categories = tuple(
        str(c)[:40] for c in (raw_categories if isinstance(raw_categories, list) else [])
    )

    def number(name: str) -> int | None:
        value = data.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    status = data.get("status")
    data_format = data.get("data_format")
    return DataRequestStatus(
        status=status[:40] if isinstance(status, str) else None,
        apply_time=number("apply_time"),
        collect_time=number("collect_time"),
        data_format=data_format[:20] if isinstance(data_format, str) else None,
        categories=categories,
    )


async def cancel_data_request(client: TikTokClient, access_token: Secret, request_id: str) -> None:
    # TikTok's page names request_id a query parameter, its example sends a body: send both.
    await client.api_post(
        "data_cancel",
        DATA_CANCEL_PATH,
        access_token,
        {"request_id": as_json_number(request_id)},
        params={"request_id": request_id},
    )


async def download_archive(
    client: TikTokClient,
    access_token: Secret,
    request_id: str,
    *,
    directory: str,
    name: str,
    max_bytes: int,
) -> Archive:
    """Stream the archive to `directory/name.zip` (atomically); its size and sha256."""
    os.makedirs(directory, exist_ok=True)
    final = os.path.join(directory, f"{name}.zip")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".part")
    try:
        async with client.api_stream(
            "data_download",
            DATA_DOWNLOAD_PATH,
            access_token,
            {"request_id": as_json_number(request_id)},
        ) as response:
            digest = hashlib.sha256()
            size = 0
            pending = b""
            checked = False
            with os.fdopen(fd, "wb") as out:
                chunks = response.aiter_bytes(_CHUNK)
                async for piece in chunks:
                    chunk = piece
                    if not checked:
                        pending += piece
                        if len(pending) < len(ZIP_MAGIC[0]):
                            continue
                        checked = True
                        if not pending.startswith(ZIP_MAGIC) or not response.is_success:
                            await _raise_error_body(response, pending, chunks)
                        chunk = pending
                    size += len(chunk)
                    if size > max_bytes:
                        raise ArchiveTooLarge(
                            "archive_too_large",
                            f"the archive exceeds {max_bytes} bytes",
                            endpoint="data_download",
                            http_status=response.status_code,
                        )
                    digest.update(chunk)
                    out.write(chunk)
                if not checked:
                    await _raise_error_body(response, pending, chunks)
                out.flush()
                os.fsync(out.fileno())
        if not zipfile.is_zipfile(tmp):
            raise TransientError(
                "invalid_archive",
                "the download is not a complete ZIP archive",
                endpoint="data_download",
            )
        os.replace(tmp, final)
        _fsync_dir(directory)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Archive(path=final, size=size, sha256=digest.hexdigest())


async def _raise_error_body(response: Any, start: bytes, rest: Any) -> None:
    """The answer is not an archive: raise what its (small) JSON body says."""
    body = bytearray(start)
    async for chunk in rest:
        body += chunk
        if len(body) > _MAX_ERROR_BODY:
            break
    try:
        parsed = msgspec.json.decode(bytes(body))
    except msgspec.DecodeError:
        parsed = None
    answer = parsed if isinstance(parsed, dict) else None
    answers.raise_for_api_error("data_download", response, answer)
    raise answers.invalid_response("data_download", response, "the answer is neither ZIP nor JSON")


def _fsync_dir(directory: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
