"""Content Posting: publishes that move through their states on a compressed clock.

`POST /sandbox/publishes` starts one for a user (as if the app had called an init
endpoint); every `publish_step_seconds` of sandbox time it takes its next state, and each
state sends the webhook TikTok sends for it:

    inbox:  PROCESSING_UPLOAD → SEND_TO_USER_INBOX (post.publish.inbox_delivered)
            → PUBLISH_COMPLETE (post.publish.complete) → public (post.publish.publicly_available)
    direct: PROCESSING_UPLOAD → PUBLISH_COMPLETE → public
    failed: PROCESSING_UPLOAD → FAILED (post.publish.failed, with the fail_reason)

`POST /v2/post/publish/status/fetch/` answers with the current state (30 calls per
minute per token, as TikTok documents); a public post becomes a video of the user that
`/v2/video/query/` and `/v2/video/list/` show (tiktok_sandbox/videos.py).
"""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tiktok_sandbox.admin import admin, read_json, user_or_404
from tiktok_sandbox.calls import CallContext
from tiktok_sandbox.errors import AdminError, ApiError
from tiktok_sandbox.publishes import FILE_BYTES, Publish, PublishSpec
from tiktok_sandbox.simulated import api_error, json_response, run_fault, simulated
from tiktok_sandbox.state import SandboxState, get_state
from tiktok_sandbox.v2api import authenticate, json_body, ok, require_any_scope

STATUS_FETCH_PATH = "/v2/post/publish/status/fetch/"
PER_TOKEN_LIMIT = 30


def _status_data(publish: Publish) -> dict[str, object]:
    data: dict[str, object] = {
        "status": publish.status,
        # TikTok's spelling, and post ids as JSON numbers (19 digits), as TikTok sends them.
        "publicaly_available_post_id": list(publish.post_ids),
        "uploaded_bytes": FILE_BYTES,
    }
    if publish.status == "FAILED":
        data["fail_reason"] = publish.fail_reason
    return data


@simulated("publish_status", api_error)
async def status_fetch(request: Request, ctx: CallContext) -> Response:
    state = get_state(request)
    faulted = await run_fault(state, ctx, api_error)
    if faulted is not None:
        return faulted
    try:
        client_key, grant = authenticate(state, request, ctx, per_token_limit=PER_TOKEN_LIMIT)
        require_any_scope(grant, "video.upload", "video.publish")
        body = await json_body(request)
        publish_id = body.get("publish_id")
        if not isinstance(publish_id, str) or not publish_id:
            raise ApiError("invalid_params", "publish_id is required.", 400)
        publish = state.posts.get(publish_id)
        if publish is None:
            raise ApiError("invalid_publish_id", "The publish_id does not exist.", 400)
        if publish.client_key != client_key or publish.open_id != grant.open_id:
            raise ApiError(
                "token_not_authorized_for_specified_publish_id",
                "The access_token does not have authorization to access the publish.",
                400,
            )
    except ApiError as exc:
        return api_error(ctx, exc.status, exc.code, exc.message)
    return ok(ctx, _status_data(publish))


def app_key(state: SandboxState, client_key: str | None) -> str:
    if client_key is not None:
        if state.app(client_key) is None:
            raise AdminError(404, "not_found", f"No app has client_key {client_key!r}.")
        return client_key
    apps = state.apps()
    if len(apps) != 1:
        raise AdminError(400, "invalid_params", "Several apps are registered: name client_key.")
    return apps[0].client_key


@admin
async def create_publish(request: Request, state: SandboxState) -> Response:
    spec = await read_json(request, PublishSpec)
    user_or_404(state, spec.open_id)
    publish = state.posts.start(spec, app_key(state, spec.client_key), state.now())
    return json_response(msgspec.to_builtins(publish), 201)


@admin
async def get_publish(request: Request, state: SandboxState) -> Response:
    publish = state.posts.get(request.path_params["publish_id"])
    if publish is None:
        raise AdminError(404, "not_found", "No such publish.")
    # Post ids as strings here: a JSON number of 19 digits trips many admin tools.
    shown = msgspec.to_builtins(publish)
    shown["post_ids"] = [str(p) for p in publish.post_ids]
    return json_response(shown)


@admin
async def make_private(request: Request, state: SandboxState) -> Response:
    """The creator hides a public post: `post.publish.no_longer_publicaly_available`."""
    publish = state.posts.get(request.path_params["publish_id"])
    if publish is None or not publish.post_ids:
        raise AdminError(404, "not_found", "No public post for this publish.")
    post_id = publish.post_ids[-1]
    state.posts.set_public(post_id, False)
    state.outbox.emit(
        client_key=publish.client_key,
        event="post.publish.no_longer_publicaly_available",
        open_id=publish.open_id,
        content={
            "publish_id": publish.publish_id,
            "post_id": post_id,
            "publish_type": "INBOX_SHARE" if publish.mode == "inbox" else "DIRECT_POST",
        },
        now=state.now(),
    )
    return json_response({"post_id": str(post_id), "public": False})


ROUTES = [
    Route(STATUS_FETCH_PATH, status_fetch, methods=["POST"]),
    Route("/sandbox/publishes", create_publish, methods=["POST"]),
    Route("/sandbox/publishes/{publish_id}", get_publish, methods=["GET"]),
    Route("/sandbox/publishes/{publish_id}/make-private", make_private, methods=["POST"]),
]
