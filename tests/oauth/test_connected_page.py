"""The success page is reached through one redirect, so reloading it is harmless."""

from __future__ import annotations

from tests.oauth.conftest import Tiktok
from tests.oauth.harness import RECEIVER, oauth_settings, running


async def test_a_reload_of_the_success_page_shows_it_again(redis_url: str, tiktok: Tiktok) -> None:
    async with running(oauth_settings(redis_url, tiktok.url)) as browser:
        callback = await browser.authorize(await browser.start(), "alice")
        answer = await browser.http.get(callback)
        assert answer.status_code == 303
        # No code in the URL (under development the open_id, to show it).
        location = answer.headers["location"]
        assert location in ("connected", "connected?open_id=alice")
        page = await browser.http.get(f"{RECEIVER}/oauth/tiktok/connected")
        again = await browser.http.get(f"{RECEIVER}/oauth/tiktok/connected")
        assert page.status_code == again.status_code == 200
        assert "TikTok account connected" in again.text
        assert "alice" not in again.text


async def test_under_development_the_page_names_the_user_and_what_to_try(
    redis_url: str, tiktok: Tiktok
) -> None:
    settings = oauth_settings(redis_url, tiktok.url, TIKTOK_WEBHOOKS_ENV="development")
    async with running(settings) as browser:
        page = await browser.connect("bob")
        assert page.status_code == 200
        assert str(page.url) == f"{RECEIVER}/oauth/tiktok/connected?open_id=bob"
        assert "<dd>bob</dd>" in page.text
        assert "tiktok-webhooks tokens show bob" in page.text
        forged = await browser.http.get(f"{RECEIVER}/oauth/tiktok/connected?open_id=<b>x</b>")
        assert "<b>x</b>" not in forged.text
