"""The two HTML pages of the authorize flow; every value shown is HTML-escaped."""

from __future__ import annotations

from html import escape

from starlette.responses import HTMLResponse

from tiktok_sandbox.models import SandboxUser

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}"
    "button{font-size:1rem;padding:.5rem 1.5rem;margin-right:1rem}"
    ".error{color:#b00020}"
)


def _page(
    title: str, body: str, status: int, headers: dict[str, str] | None = None
) -> HTMLResponse:
    document = (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><p><small>TikTok sandbox</small></p>{body}</body></html>"
    )
    base = {"cache-control": "no-store", "x-frame-options": "DENY"}
    return HTMLResponse(document, status_code=status, headers={**base, **(headers or {})})


def error_page(status: int, error: str, description: str) -> HTMLResponse:
    """TikTok fails on its own page rather than redirect to an unverified redirect_uri.

    `X-Sandbox-Error` repeats the error code for tests and scripts.
    """
    body = (
        "<h1>Something went wrong</h1>"
        f'<p class="error" id="error">{escape(error)}</p>'
        f'<p id="error_description">{escape(description)}</p>'
    )
    return _page("Authorization error", body, status, {"x-sandbox-error": error})


def consent_page(
    *,
    request_id: str,
    app_name: str,
    client_key: str,
    user: SandboxUser,
    users: list[SandboxUser],
    scopes: tuple[str, ...],
    action: str,
) -> HTMLResponse:
    """Approve or deny, as one of the sandbox users (a select, `user` chosen first)."""
    items = "".join(f"<li>{escape(scope)}</li>" for scope in scopes)
    choices = "".join(
        f'<option value="{escape(u.open_id)}"{" selected" if u.open_id == user.open_id else ""}>'
        f"{escape(u.display_name)} ({escape(u.open_id)})</option>"
        for u in users
    )
    body = (
        f'<h1><span id="app">{escape(app_name)}</span> would like to access your TikTok '
        "account</h1>"
        f'<p><small>client key <code id="client_key">{escape(client_key)}</code></small></p>'
        f'<p>Logged in as <strong id="user">{escape(user.display_name)}</strong>'
        f" (<code>{escape(user.open_id)}</code>)</p>"
        f'<p>Requested permissions:</p><ul id="scopes">{items}</ul>'
        f'<form method="post" action="{escape(action)}">'
        f'<input type="hidden" name="request_id" value="{escape(request_id)}">'
        '<p><label for="open_id">Approve as</label> '
        f'<select id="open_id" name="open_id">{choices}</select></p>'
        '<button type="submit" name="decision" value="approve">Approve</button>'
        '<button type="submit" name="decision" value="deny">Deny</button>'
        "</form>"
    )
    return _page("Authorize app", body, 200)
