"""The small HTML pages the OAuth routes show a person in a browser.

Rendered from ``templates/page.html`` with Jinja2; everything interpolated is escaped.
Pages carry no external resources and a strict policy, and `Referrer-Policy: no-referrer`,
so the callback URL (which holds the authorization code) never leaks through a Referer
header.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import jinja2
from markupsafe import Markup
from starlette.responses import HTMLResponse

from receiver.tiktok.errors import TikTokError

SECURITY_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}
_PAGES: Final = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=True,
    keep_trailing_newline=True,
)


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
    content = _PAGES.get_template("page.html").render(
        title=title,
        message=message,
        details=details,
        # Element text, never an attribute: quotes need no escaping (as the page always had).
        details_title=Markup(html.escape(details_title, quote=False)),  # noqa: S704
        start_again=start_again,
    )
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
