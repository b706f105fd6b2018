"""The OAuth pages, rendered from their template: the markup people's browsers get."""

from __future__ import annotations

from receiver.oauth.pages import page

EXPECTED = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>TikTok refused &lt;this&gt;</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;
line-height:1.5}dt{font-weight:600}dd{margin:0 0 .5rem 0;font-family:monospace}</style>
</head><body><h1>TikTok refused &lt;this&gt;</h1>
<p>Try &amp; try again</p>
<h2>For the site's operator</h2><dl><dt>TikTok error</dt><dd>invalid_scope</dd>\
<dt>What to do</dt><dd>&lt;b&gt;ask&lt;/b&gt;</dd></dl>
<p><a href="start">Connect your TikTok account again</a></p>
</body></html>
"""


def test_a_page_with_details_and_the_way_back() -> None:
    response = page(
        502,
        "TikTok refused <this>",
        "Try & try again",
        details=[("TikTok error", "invalid_scope"), ("What to do", "<b>ask</b>")],
        start_again=True,
        headers={"Retry-After": "5"},
    )
    assert response.status_code == 502
    assert bytes(response.body).decode() == EXPECTED
    assert response.headers["retry-after"] == "5"
    assert response.headers["x-frame-options"] == "DENY"


def test_a_plain_page_has_only_its_message() -> None:
    body = bytes(page(200, "Connected", "Your account is connected.").body).decode()
    assert "<p>Your account is connected.</p>\n</body></html>\n" in body
    assert "<h2>" not in body
    assert 'href="start"' not in body
