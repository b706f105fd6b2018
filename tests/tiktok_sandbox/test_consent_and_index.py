"""The consent page names the app and lets one choose the approving user; /sandbox/ is an
index of the admin API."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from tests.tiktok_sandbox.harness import SandboxClient
from tiktok_sandbox.config import DEFAULT_APP_NAME


def test_the_consent_page_names_the_app_and_offers_every_user(sandbox: SandboxClient) -> None:
    sandbox.settings(auto_approve=False)
    sandbox.admin("POST", "users", {"open_id": "open-ann", "display_name": "Ann"})
    sandbox.admin("POST", "users", {"open_id": "open-ben", "display_name": "Ben"})
    page = sandbox.authorize(sandbox_user="open-ann")
    assert f'<span id="app">{DEFAULT_APP_NAME}</span>' in page.text
    assert '<option value="open-ann" selected>Ann (open-ann)</option>' in page.text
    assert '<option value="open-ben">Ben (open-ben)</option>' in page.text
    request_id = re.search(r'name="request_id" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]

    unknown = sandbox.http.post(
        "/v2/auth/authorize/decision/",
        data={"request_id": request_id, "decision": "approve", "open_id": "nobody"},
    )
    assert unknown.status_code == 400
    decided = sandbox.http.post(
        "/v2/auth/authorize/decision/",
        data={"request_id": request_id, "decision": "approve", "open_id": "open-ben"},
    )
    code = parse_qs(urlsplit(decided.headers["location"]).query)["code"][0]
    assert sandbox.exchange(code).json()["open_id"] == "open-ben"


def test_the_admin_index_lists_the_admin_api(sandbox: SandboxClient) -> None:
    index = sandbox.http.get("/sandbox/")
    assert index.status_code == 200
    endpoints = {(tuple(e["methods"]), e["path"]) for e in index.json()["endpoints"]}
    assert (("GET",), "/sandbox/users") in endpoints
    assert (("POST",), "/sandbox/webhooks") in endpoints
    assert all(path.startswith("/sandbox/") for _, path in endpoints)
    health = sandbox.http.get("/healthz")
    assert health.status_code == 200
    assert "x-run-token" not in health.headers  # only when started with a run token
