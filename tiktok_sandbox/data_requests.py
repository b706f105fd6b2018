"""The sandbox's Data Portability requests (the state behind tiktok_sandbox/portability.py)."""

from __future__ import annotations

import io
import threading
import zipfile

import msgspec

from tiktok_sandbox.ids import new_data_request_id
from tiktok_sandbox.publishes import Emit

_ARCHIVE_DATE = (2024, 1, 1, 0, 0, 0)
CATEGORIES = ("all_data", "video", "profile", "activity", "direct_message")
# Which scope families cover a category; `portability.all.*` covers every one.
_FAMILY = {
    "all_data": "all",
    "video": "postsandprofile",
    "profile": "postsandprofile",
    "activity": "activity",
    "direct_message": "directmessages",
}


def covered(category: str, scopes: tuple[str, ...]) -> bool:
    families = {"all", _FAMILY.get(category, "all")}
    return any(
        scope.startswith("portability.") and scope.split(".")[1] in families for scope in scopes
    )


class DataRequest(msgspec.Struct, kw_only=True):
    request_id: int
    client_key: str
    open_id: str
    data_format: str
    categories: list[str]
    apply_time: int
    status: str = "pending"  # pending, downloading (= ready), expired, cancelled
    collect_time: int | None = None


class DataRequestStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[int, DataRequest] = {}

    def clear(self) -> None:
        with self._lock:
            self._requests = {}

    def add(
        self, client_key: str, open_id: str, data_format: str, categories: list[str], now: float
    ) -> DataRequest:
        request = DataRequest(
            request_id=new_data_request_id(),
            client_key=client_key,
            open_id=open_id,
            data_format=data_format,
            categories=categories,
            apply_time=int(now),
        )
        with self._lock:
            self._requests[request.request_id] = request
        return msgspec.structs.replace(request)

    def get(self, request_id: int) -> DataRequest | None:
        with self._lock:
            request = self._requests.get(request_id)
            return None if request is None else msgspec.structs.replace(request)

    def all(self) -> list[DataRequest]:
        with self._lock:
            return [msgspec.structs.replace(r) for r in self._requests.values()]

    def set_status(self, request_id: int, status: str, *, only_from: tuple[str, ...]) -> bool:
        with self._lock:
            request = self._requests.get(request_id)
            if request is None or request.status not in only_from:
                return False
            request.status = status
            return True

    def advance(self, now: float, ready_after: float, emit: Emit) -> None:
        """Requests collected long enough become ready, with `portability.download.ready`
        (which, like TikTok's example, names no user)."""
        ready: list[DataRequest] = []
        with self._lock:
            for request in self._requests.values():
                if request.status == "pending" and now >= request.apply_time + ready_after:
                    request.status = "downloading"
                    request.collect_time = int(now)
                    ready.append(request)
        for request in ready:
            emit(
                request.client_key,
                "portability.download.ready",
                None,
                {"request_id": request.request_id},
            )


def build_archive(request: DataRequest, profile: dict[str, object], padding: int) -> bytes:
    """A small real ZIP: the user's profile and what was asked for (plus filler bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        summary = {
            "request_id": request.request_id,
            "data_format": request.data_format,
            "categories": request.categories,
            "profile": profile,
        }
        name = "user_data.json" if request.data_format == "json" else "user_data.txt"
        # A fixed date: the same request gives the same bytes (and sha256) every time.
        archive.writestr(
            zipfile.ZipInfo(name, date_time=_ARCHIVE_DATE),
            msgspec.json.format(msgspec.json.encode(summary)),
            compress_type=zipfile.ZIP_DEFLATED,
        )
        if padding:
            archive.writestr(
                zipfile.ZipInfo("padding.bin", date_time=_ARCHIVE_DATE),
                bytes(padding),
                compress_type=zipfile.ZIP_STORED,
            )
    return buffer.getvalue()
