"""The CLI's tests reuse the fixtures of the wings whose commands they run."""

from tests.ingest.conftest import other_db_url
from tests.oauth.conftest import sandbox_info

__all__ = ["other_db_url", "sandbox_info"]
