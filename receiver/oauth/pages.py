"""The small HTML pages the OAuth routes show a person in a browser.

Everything interpolated is escaped. Pages carry no external resources and a strict
policy, and `Referrer-Policy: no-referrer`, so the callback URL (which holds the
authorization code) never leaks through a Referer header.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Final

from starlette.responses import HTMLResponse

from receiver.tiktok.errors import TikTokError

SECURITY_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}
# Relative to /oauth/tiktok/callback, so it also works behind a path-prefix proxy.
START_AGAIN: Final = '<p><a href="start">Connect your TikTok account again</a></p>'

_TEMPLATE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;
line-height:1.5}}dt{{font-weight:600}}dd{{margin:0 0 .5rem 0;font-family:monospace}}</style>
</head><body><h1>{title}</h1>
{body}
</body></html>
"""


def page(
    status: int,
    title: str,
    message: str,
    *,
    details: Sequence[tuple[str, str]] = (),
    start_again: bool = False,
    headers: dict[str, str] | None = None,
    details_title: str = "For the site's operator",
) -> HTMLResponse:
    """A page with a title, one message and optional operator details (all escaped)."""
    parts = [f"<p>{html.escape(message)}</p>"]
    if details:
        rows = "".join(
            f"<dt>{html.escape(name)}</dt><dd>{html.escape(value)}</dd>" for name, value in details
        )
        parts.append(f"<h2>{html.escape(details_title)}</h2><dl>{rows}</dl>")
    if start_again:
        parts.append(START_AGAIN)
    content = _TEMPLATE.format(title=html.escape(title), body="\n".join(parts))
    all_headers = {**SECURITY_HEADERS, **(headers or {})}
    return HTMLResponse(content, status_code=status, headers=all_headers)


def tiktok_error_details(error: TikTokError) -> list[tuple[str, str]]:
    """What an operator needs: TikTok's code and text, the log_id for support, the hint."""
    details = [("TikTok error", error.code)]
    if error.description:
        details.append(("Description", error.description))
    if error.http_status is not None:
        details.append(("HTTP status", str(error.http_status)))
    details.append(("log_id", error.log_id or "(none given)"))
    details.append(("What to do", error.hint))
    return details
