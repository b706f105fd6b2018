"""The simulated TikTok users, and who "logs in" on the authorize page."""

from __future__ import annotations

import re
import threading
import uuid

import msgspec

from tiktok_sandbox.ids import new_open_id
from tiktok_sandbox.models import SandboxUser

_AVATAR_BASE = "https://p16-sign.sandbox.tiktok.invalid/avatar"


def _complete(user: SandboxUser, number: int) -> SandboxUser:
    """Fill blank fields with plausible values, so every field of user info has data."""
    open_id = user.open_id or new_open_id()
    slug = re.sub(r"[^a-z0-9]+", "_", user.display_name.lower()).strip("_")
    username = user.username or slug or f"sandbox_user_{number}"
    avatar = f"{_AVATAR_BASE}/{open_id}"
    return msgspec.structs.replace(
        user,
        open_id=open_id,
        union_id=user.union_id or str(uuid.uuid4()),
        display_name=user.display_name or f"Sandbox User {number}",
        username=username,
        avatar_url=user.avatar_url or f"{avatar}~c5_168x168.jpeg",
        avatar_url_100=user.avatar_url_100 or f"{avatar}~c5_100x100.jpeg",
        avatar_large_url=user.avatar_large_url or f"{avatar}~c5_720x720.jpeg",
        profile_deep_link=user.profile_deep_link or f"https://vm.tiktok.com/sandbox/{username}/",
        profile_web_link=user.profile_web_link or f"https://www.tiktok.com/@{username}",
    )


class UserDirectory:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, SandboxUser] = {}
        self._added = 0

    def clear(self) -> None:
        with self._lock:
            self._users = {}
            self._added = 0

    def add(self, spec: SandboxUser) -> SandboxUser | None:
        """Add a user; None when the open_id is already taken."""
        with self._lock:
            if spec.open_id and spec.open_id in self._users:
                return None
            self._added += 1
            user = _complete(spec, self._added)
            self._users[user.open_id] = user
            return user

    def replace(self, user: SandboxUser) -> bool:
        with self._lock:
            if user.open_id not in self._users:
                return False
            self._users[user.open_id] = user
            return True

    def get(self, open_id: str) -> SandboxUser | None:
        with self._lock:
            return self._users.get(open_id)

    def all(self) -> list[SandboxUser]:
        with self._lock:
            return list(self._users.values())

    def login(self, hint: str | None) -> SandboxUser | None:
        """The user named by `hint`, else the first seeded one, else a brand-new user.

        None only when `hint` names no user.
        """
        if hint:
            return self.get(hint)
        with self._lock:
            first = next(iter(self._users.values()), None)
        return first if first is not None else self.add(SandboxUser())
