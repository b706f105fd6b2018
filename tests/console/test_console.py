"""The console in-process: sign-in, sessions, CSRF, headers, pages, actions, bad input."""

from __future__ import annotations

import re
import time

import pytest
import redis.asyncio as aioredis

from handlers.deadletter import DeadLetterStore
from receiver import keys, users
from receiver.app import create_app
from receiver.ingest.jobs import PROCESS_EVENT, job_deserializer
from receiver.settings import ConfigError
from tests.console.conftest import (
    CONSOLE,
    Operator,
    console_settings,
    csrf_of,
    eventually,
    signed_in,
)
from tests.factories import CLIENT_KEY, delivery
from tests.oauth.conftest import Tiktok
from tests.oauth.harness import ADMIN_TOKEN, RECEIVER, running, stored_tokens

PAGES = ("/", "/deliveries", "/users", "/dead-letters", "/forwarding")
POSTS = (
    "/logout",
    "/dead-letters/replay",
    "/dead-letters/123-abc/replay",
    f"/users/{CLIENT_KEY}/alice/refresh",
    f"/users/{CLIENT_KEY}/alice/reauth",
)


async def test_off_unless_enabled(redis_url: str, tiktok: Tiktok) -> None:
    async with running(console_settings(redis_url, tiktok.url, CONSOLE_ENABLED="0")) as browser:
        for path in ("/login", "/", "/deliveries"):
            assert (await browser.http.get(f"{CONSOLE}{path}")).status_code == 404


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"ADMIN_TOKEN": ""}, "CONSOLE_ENABLED needs CONSOLE_TOKEN"),
        ({"CONSOLE_TOKEN": "short"}, "CONSOLE_TOKEN is shorter than 32"),
        ({"TOKEN_ENCRYPTION_KEYS": "", "TIKTOK_REDIRECT_URI": ""}, "TOKEN_ENCRYPTION_KEYS"),
    ],
)
def test_refuses_to_start_half_configured(
    redis_url: str, env: dict[str, str], problem: str
) -> None:
    settings = console_settings(redis_url, "http://127.0.0.1:9", **env)
    with pytest.raises(ConfigError) as caught:
        create_app(settings)
    assert any(problem in line for line in caught.value.problems), caught.value.problems


async def test_sign_in_sets_a_strict_session_cookie(redis_url: str, tiktok: Tiktok) -> None:
    async with running(console_settings(redis_url, tiktok.url)) as browser:
        operator = Operator(browser)
        first = await operator.page("/")
        assert first.status_code == 303
        assert first.headers["location"].endswith("/console/login")

        form = await operator.page("/login")
        assert 'name="token"' in form.text
        assert len(re.findall(r"<input[^>]+name=\"token\"", form.text)) == 1
        wrong = await operator.sign_in(ADMIN_TOKEN + "x")
        assert wrong.status_code == 401
        assert "not right" in wrong.text
        assert "console_session" not in wrong.headers.get("set-cookie", "")

        response = await operator.sign_in()
        assert response.status_code == 303
        cookie = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith("console_session=")
        )
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "secure", "samesite=strict", "path=/console"} <= flags
        assert any(flag.startswith("max-age=") for flag in flags)
        assert ADMIN_TOKEN not in cookie
        assert (await operator.page("/")).status_code == 200


async def test_console_token_replaces_admin_token(redis_url: str, tiktok: Tiktok) -> None:
    console_token = "console-" + "k" * 40
    settings = console_settings(redis_url, tiktok.url, CONSOLE_TOKEN=console_token)
    async with running(settings) as browser:
        operator = Operator(browser)
        assert (await operator.sign_in(ADMIN_TOKEN)).status_code == 401
        assert (await operator.sign_in(console_token)).status_code == 303


async def test_login_without_its_csrf_token_is_403(redis_url: str, tiktok: Tiktok) -> None:
    async with running(console_settings(redis_url, tiktok.url)) as browser:
        http = browser.http
        no_cookie = await http.post(f"{CONSOLE}/login", data={"token": ADMIN_TOKEN, "csrf": "x"})
        assert no_cookie.status_code == 403
        form = await http.get(f"{CONSOLE}/login")
        wrong = await http.post(f"{CONSOLE}/login", data={"token": ADMIN_TOKEN, "csrf": "nope"})
        assert wrong.status_code == 403
        missing = await http.post(f"{CONSOLE}/login", data={"token": ADMIN_TOKEN})
        assert missing.status_code == 403
        right = await http.post(
            f"{CONSOLE}/login", data={"token": ADMIN_TOKEN, "csrf": csrf_of(form.text)}
        )
        assert right.status_code == 303


async def test_every_post_needs_the_sessions_csrf_token(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    store = DeadLetterStore(redis_client)
    async with signed_in(console_settings(redis_url, tiktok.url)) as operator:
        assert (await operator.browser.connect()).status_code == 200
        for path in POSTS:
            for data in ({}, {"csrf": "forged", "confirm": "yes"}):
                response = await operator.http.post(f"{CONSOLE}{path}", data=data)
                assert response.status_code == 403, (path, data)
        # Nothing happened: still signed in, the user still active, nothing logged.
        assert (await operator.page("/")).status_code == 200
        status = redis_client.hget(f"{keys.TOKEN_PREFIX}{CLIENT_KEY}:alice", "status")
        assert await status == b"active"  # type: ignore[misc]
        assert await redis_client.llen(keys.CONSOLE_ACTIONS_LIST) == 0  # type: ignore[misc]
        assert await store.size() == 0


async def test_signed_out_posts_are_403(redis_url: str, tiktok: Tiktok) -> None:
    async with running(console_settings(redis_url, tiktok.url)) as browser:
        for path in POSTS:
            response = await browser.http.post(f"{CONSOLE}{path}", data={"csrf": "x"})
            assert response.status_code == 403, path


async def test_pages_send_strict_headers_and_load_nothing_from_elsewhere(
    redis_url: str, tiktok: Tiktok
) -> None:
    async with signed_in(console_settings(redis_url, tiktok.url)) as operator:
        for path in (*PAGES, "/login"):
            response = await operator.page(path)
            assert response.status_code == 200, path
            headers = response.headers
            assert headers["cache-control"] == "no-store"
            assert headers["x-frame-options"] == "DENY"
            csp = headers["content-security-policy"]
            assert "default-src 'none'" in csp
            assert "script-src" not in csp  # default 'none': no script at all
            assert "unsafe-inline" not in csp
            assert "<script" not in response.text
            assert " style=" not in response.text
            for url in re.findall(r'(?:src|href)="([^"]+)"', response.text):
                assert url.startswith(("/console", "?")), (path, url)
        css = await operator.page("/static/console.css")
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")
        for bad in ("/static/..%2Fsession.py", "/static/missing.css", "/static/.hidden"):
            assert (await operator.page(bad)).status_code == 404


async def test_logout_ends_the_session_even_for_a_copied_cookie(
    redis_url: str, tiktok: Tiktok
) -> None:
    async with signed_in(console_settings(redis_url, tiktok.url)) as operator:
        copied = operator.http.cookies.get("console_session", path="/console")
        assert copied
        response = await operator.post("/logout", from_page="/")
        assert response.status_code == 303
        assert (await operator.page("/")).status_code == 303
        operator.http.cookies.set("console_session", copied, domain="receiver.example")
        again = await operator.page("/")
        assert again.status_code == 303
        assert again.headers["location"].endswith("/login")


async def test_a_forged_or_expired_session_cookie_is_refused(
    redis_url: str, tiktok: Tiktok
) -> None:
    settings = console_settings(redis_url, tiktok.url)
    app = create_app(settings)
    assert app.console is not None
    signer = app.console.signer
    _, expired = signer.new_session(now=time.time() - settings.console_session_seconds - 5)
    _, valid = signer.new_session()
    payload, _, mac = valid.partition(".")
    for value in (expired, payload + "." + mac[::-1], payload, "garbage", valid + "x"):
        assert signer.read_session(value) is None, value
    async with running(settings) as browser:
        browser.http.cookies.set("console_session", expired, domain="receiver.example")
        assert (await browser.http.get(f"{CONSOLE}/")).status_code == 303


async def test_deliveries_appear_with_outcome_and_decoded_content(
    redis_url: str, tiktok: Tiktok
) -> None:
    async with signed_in(console_settings(redis_url, tiktok.url)) as operator:
        sent = []
        for index, open_id in enumerate(("alice", "bob", "alice")):
            body, headers = delivery(
                "video.publish.completed",
                {"share_id": f"video.{index}.<script>"},
                open_id=open_id,
                create_time=1_700_000_000 + index,
            )
            sent.append((body, headers))
            answer = await operator.http.post(
                f"{RECEIVER}/webhooks/tiktok", content=body, headers=headers
            )
            assert answer.status_code == 200
        body, headers = sent[0]
        again = await operator.http.post(
            f"{RECEIVER}/webhooks/tiktok", content=body, headers=headers
        )
        assert again.json() == {"status": "duplicate"}

        async def listed() -> bool:
            page = await operator.page("/deliveries")
            return page.text.count("<td>video.publish.completed</td>") >= 4

        await eventually(listed)
        page = (await operator.page("/deliveries")).text
        assert page.count("outcome-accepted") == 3
        assert page.count("outcome-duplicate") == 1
        only_bob = (await operator.page("/deliveries?user=bob")).text
        assert only_bob.count("<td>video.publish.completed</td>") == 1
        nothing = (await operator.page("/deliveries?event=tiktok.ping")).text
        assert "matches these filters" in nothing

        entry = re.findall(r'href="/console/deliveries/([0-9]+-[0-9]+)"', page)[0]
        detail = await operator.page(f"/deliveries/{entry}")
        assert detail.status_code == 200
        assert "video.0.&lt;script&gt;" in detail.text
        assert "<script>" not in detail.text

        overview = (await operator.page("/")).text
        assert re.search(r'class="number">3</span> accepted', overview)
        assert re.search(r'class="number">1</span> duplicate', overview)
        assert "<rect" in overview

        for bad in ("/deliveries/nope", "/deliveries/1-1", "/deliveries/%00"):
            assert (await operator.page(bad)).status_code == 404
        odd = await operator.page("/deliveries?before=zzz&user=" + "x" * 5000)
        assert odd.status_code == 200


async def test_the_index_is_bounded(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    settings = console_settings(redis_url, tiktok.url, CONSOLE_RECENT_MAX_ENTRIES="5")
    async with signed_in(settings) as operator:
        for index in range(12):
            body, headers = delivery(create_time=1_700_000_000 + index)
            answer = await operator.http.post(
                f"{RECEIVER}/webhooks/tiktok", content=body, headers=headers
            )
            assert answer.status_code == 200

        async def all_counted() -> bool:
            minutes = await redis_client.keys(keys.RECENT_MINUTE_PREFIX + "*")
            total = 0
            for key in minutes:
                total += int(await redis_client.hget(key, "accepted") or 0)  # type: ignore[misc]
            return total == 12

        await eventually(all_counted)
        assert await redis_client.xlen(keys.RECENT_STREAM) == 5
        minute_keys = await redis_client.keys(keys.RECENT_MINUTE_PREFIX + "*")
        for key in minute_keys:
            assert 0 < await redis_client.ttl(key) <= 2 * 3600


async def test_index_is_off_with_the_console(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    async with running(console_settings(redis_url, tiktok.url, CONSOLE_ENABLED="0")) as browser:
        body, headers = delivery()
        answer = await browser.http.post(
            f"{RECEIVER}/webhooks/tiktok", content=body, headers=headers
        )
        assert answer.status_code == 200
    assert await redis_client.exists(keys.RECENT_STREAM) == 0


async def test_replay_a_dead_letter_after_confirmation(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    store = DeadLetterStore(redis_client)
    body, _ = delivery("video.publish.completed", {"share_id": "s1"})
    letter = await store.add(
        function=PROCESS_EVENT,
        args=[body],
        kwargs={},
        job_id="job-1",
        event="video.publish.completed",
        error=RuntimeError("the handler broke"),
        tries=5,
    )
    other = await store.add(
        function=PROCESS_EVENT,
        args=[body],
        kwargs={},
        job_id="job-2",
        event="authorization.removed",
        error=ValueError("another"),
        tries=5,
    )
    async with signed_in(console_settings(redis_url, tiktok.url)) as operator:
        listing = (await operator.page("/dead-letters")).text
        assert letter.id in listing
        assert other.id in listing
        filtered = (await operator.page("/dead-letters?error=ValueError")).text
        assert other.id in filtered
        assert letter.id not in filtered
        detail = (await operator.page(f"/dead-letters/{letter.id}")).text
        assert "the handler broke" in detail
        assert "s1" in detail

        asked = await operator.post(
            f"/dead-letters/{letter.id}/replay", from_page=f"/dead-letters/{letter.id}"
        )
        assert asked.status_code == 200
        assert "Yes, do it" in asked.text
        assert await store.get(letter.id) is not None  # not yet: only asked

        done = await operator.http.post(
            f"{CONSOLE}/dead-letters/{letter.id}/replay",
            data={"csrf": csrf_of(asked.text), "confirm": "yes"},
        )
        assert done.status_code == 303
        assert await store.get(letter.id) is None
        queued = await redis_client.zrange("arq:queue", 0, -1)
        assert len(queued) == 1
        job = job_deserializer(await redis_client.get(keys.ARQ_JOB_PREFIX + queued[0].decode()))
        assert job["f"] == PROCESS_EVENT
        assert job["a"] == [body]
        page = (await operator.page("/dead-letters")).text
        assert "1 replayed" in page
        assert "queued" in page  # no worker runs here
        assert "session " in page
        assert "from " in page

        gone = await operator.page(f"/dead-letters/{letter.id}")
        assert gone.status_code == 404


async def test_replay_all_of_a_filter(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    store = DeadLetterStore(redis_client)
    body, _ = delivery()
    for index in range(3):
        await store.add(
            function=PROCESS_EVENT,
            args=[body],
            kwargs={},
            job_id=f"job-{index}",
            event="authorization.removed" if index else "tiktok.ping",
            error=RuntimeError("broken"),
            tries=1,
        )
    async with signed_in(console_settings(redis_url, tiktok.url)) as operator:
        asked = await operator.post(
            "/dead-letters/replay",
            from_page="/dead-letters?event=authorization.removed",
            event="authorization.removed",
        )
        assert "Replay 2 dead letters" in asked.text
        done = await operator.http.post(
            f"{CONSOLE}/dead-letters/replay",
            data={"csrf": csrf_of(asked.text), "confirm": "yes", "event": "authorization.removed"},
        )
        assert done.status_code == 303
    assert await store.size() == 1
    remaining = await store.list()
    assert remaining[0].event == "tiktok.ping"
    assert await redis_client.zcard("arq:queue") == 2


async def test_user_page_and_actions(
    redis_url: str, redis_client: aioredis.Redis, tiktok: Tiktok
) -> None:
    async with signed_in(console_settings(redis_url, tiktok.url)) as operator:
        assert (await operator.browser.connect("alice")).status_code == 200
        access, refresh = await stored_tokens(redis_client, "alice")
        await users.save_profile(
            redis_client,
            CLIENT_KEY,
            "alice",
            {"display_name": "Alice <b>", "avatar_url": "https://p16.tiktokcdn.com/a.jpeg"},
        )
        listing = (await operator.page("/users")).text
        assert "alice" in listing
        assert "status-active" in listing
        page = (await operator.page(f"/users/{CLIENT_KEY}/alice")).text
        assert "Alice &lt;b&gt;" in page
        assert '<a href="https://p16.tiktokcdn.com/a.jpeg" rel="noreferrer noopener">' in page
        assert "<img" not in page
        for secret in (access, refresh):
            assert secret not in page
            assert secret not in listing

        path = f"/users/{CLIENT_KEY}/alice"
        asked = await operator.post(f"{path}/refresh", from_page=path)
        assert "Refresh this user" in asked.text
        done = await operator.http.post(
            f"{CONSOLE}{path}/refresh", data={"csrf": csrf_of(asked.text), "confirm": "yes"}
        )
        assert done.status_code == 303
        new_access, _ = await stored_tokens(redis_client, "alice")
        assert new_access != access
        assert len(await tiktok.calls("token", grant_type="refresh_token")) == 1

        asked = await operator.post(f"{path}/reauth", from_page=path)
        done = await operator.http.post(
            f"{CONSOLE}{path}/reauth", data={"csrf": csrf_of(asked.text), "confirm": "yes"}
        )
        assert done.status_code == 303
        page = (await operator.page(path)).text
        assert "status-needs_reauth" in page
        assert "mark for re-authorization" in page
        assert "refresh token" in page
        overview = (await operator.page("/")).text
        assert "needs_reauth" in overview

        for bad in (
            f"/users/{CLIENT_KEY}/nobody",
            "/users/other-app/alice",
            f"/users/{CLIENT_KEY}/alice/refresh",  # GET of a POST-only path
        ):
            assert (await operator.page(bad)).status_code in (404, 405), bad
        unknown = await operator.post(f"{path}/delete", from_page=path, confirm="yes")
        assert unknown.status_code == 404


async def test_redis_down_is_a_503_page(tiktok: Tiktok) -> None:
    dead = console_settings("redis://127.0.0.1:1/0", tiktok.url, REDIS_TIMEOUT_SECONDS="0.2")
    async with running(dead) as browser:
        form = await browser.http.get(f"{CONSOLE}/login")
        assert form.status_code == 200
        response = await browser.http.post(
            f"{CONSOLE}/login", data={"token": ADMIN_TOKEN, "csrf": csrf_of(form.text)}
        )
        assert response.status_code == 503
        assert "Traceback" not in response.text
