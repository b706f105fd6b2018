"""Display API: `POST /v2/video/query/` and `POST /v2/video/list/` (followup-apis §2).

The videos are the public posts the sandbox's publishes made. A post that is not public
(or not the token user's, or unknown) is simply absent from the answer, as observed of
TikTok: HTTP 200 with an empty `videos` list, never an error.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tiktok_sandbox.calls import CallContext
from tiktok_sandbox.errors import ApiError
from tiktok_sandbox.publishes import Video
from tiktok_sandbox.scopes import split_scopes
from tiktok_sandbox.simulated import api_error, run_fault, simulated
from tiktok_sandbox.state import get_state
from tiktok_sandbox.v2api import authenticate, json_body, ok, require_any_scope

VIDEO_QUERY_PATH = "/v2/video/query/"
VIDEO_LIST_PATH = "/v2/video/list/"
VIDEO_FIELDS = frozenset(
    {
        "id",
        "create_time",
        "cover_image_url",
        "share_url",
        "video_description",
        "duration",
        "height",
        "width",
        "title",
        "embed_html",
        "embed_link",
        "like_count",
        "comment_count",
        "share_count",
        "view_count",
    }
)
MAX_IDS = 20


def _fields(request: Request) -> list[str]:
    fields = split_scopes(",".join(request.query_params.getlist("fields")))
    if not fields:
        raise ApiError("invalid_params", "The fields parameter is required.", 400)
    unknown = [f for f in fields if f not in VIDEO_FIELDS]
    if unknown:
        raise ApiError(
            "invalid_params",
            f"One or more fields in request is invalid: {', '.join(unknown)}.",
            400,
        )
    return fields


def _object(video: Video, fields: list[str]) -> dict[str, Any]:
    link = f"https://www.tiktok.com/@sandbox/video/{video.id}"
    full: dict[str, Any] = {
        "id": str(video.id),  # the Video Object's id is a string
        "create_time": video.create_time,
        "cover_image_url": f"https://p16-sign.sandbox.tiktok.invalid/cover/{video.id}.jpeg",
        "share_url": f"{link}?utm_campaign=tt4d_open_api",
        "video_description": video.title,
        "duration": 12,
        "height": 1920,
        "width": 1080,
        "title": video.title,
        "embed_html": f'<blockquote class="tiktok-embed" cite="{link}"></blockquote>',
        "embed_link": f"https://www.tiktok.com/static/profile-video?id={video.id}",
        "like_count": video.like_count,
        "comment_count": video.comment_count,
        "share_count": video.share_count,
        "view_count": video.view_count,
    }
    return {name: full[name] for name in fields}


@simulated("video_query", api_error)
async def video_query(request: Request, ctx: CallContext) -> Response:
    state = get_state(request)
    faulted = await run_fault(state, ctx, api_error)
    if faulted is not None:
        return faulted
    try:
        client_key, grant = authenticate(state, request, ctx)
        require_any_scope(grant, "video.list")
        fields = _fields(request)
        body = await json_body(request)
        filters = body.get("filters")
        ids = filters.get("video_ids") if isinstance(filters, dict) else None
        if not isinstance(ids, list) or not ids or len(ids) > MAX_IDS:
            raise ApiError("invalid_params", "filters.video_ids needs 1 to 20 video ids.", 400)
        wanted = {str(i) for i in ids if isinstance(i, str | int) and not isinstance(i, bool)}
    except ApiError as exc:
        return api_error(ctx, exc.status, exc.code, exc.message)
    videos = [
        _object(v, fields)
        for v in state.posts.videos_of(client_key, grant.open_id)
        if v.public and str(v.id) in wanted
    ]
    return ok(ctx, {"videos": videos})


@simulated("video_list", api_error)
async def video_list(request: Request, ctx: CallContext) -> Response:
    state = get_state(request)
    faulted = await run_fault(state, ctx, api_error)
    if faulted is not None:
        return faulted
    try:
        client_key, grant = authenticate(state, request, ctx)
        require_any_scope(grant, "video.list")
        fields = _fields(request)
        body = await json_body(request)
        max_count = body.get("max_count", 10)
        cursor = body.get("cursor")
        if not isinstance(max_count, int) or not 1 <= max_count <= MAX_IDS:
            raise ApiError("invalid_params", "max_count must be 1 to 20.", 400)
        if cursor is not None and not isinstance(cursor, int):
            raise ApiError("invalid_params", "cursor must be a timestamp in milliseconds.", 400)
    except ApiError as exc:
        return api_error(ctx, exc.status, exc.code, exc.message)
    public = sorted(
        (v for v in state.posts.videos_of(client_key, grant.open_id) if v.public),
        key=lambda v: (v.create_time, v.id),
        reverse=True,
    )
    if cursor is not None:
        public = [v for v in public if v.create_time * 1000 < cursor]
    page = public[:max_count]
    next_cursor = page[-1].create_time * 1000 if page else (cursor or 0)
    return ok(
        ctx,
        {
            "videos": [_object(v, fields) for v in page],
            "cursor": next_cursor,
            "has_more": len(public) > len(page),
        },
    )


ROUTES = [
    Route(VIDEO_QUERY_PATH, video_query, methods=["POST"]),
    Route(VIDEO_LIST_PATH, video_list, methods=["POST"]),
]
