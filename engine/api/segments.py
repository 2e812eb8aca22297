"""Segments: list, members (paged, with reasons), export. Thin layer over engine.segment and
engine.export (issue 4); when those modules are absent the endpoints answer 501, never fake data.

Exports and the token: an export with raw user ids, or hashed with a salt the caller chose (the
caller could then hash guessed ids and match them), needs the bearer token to be made and to be
downloaded. An export hashed with the server's own salt (the persona home's salt file, or the
configured one) needs none: it carries no user id and no salt. A file whose manifest is missing
or unreadable counts as raw."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

import engine.api.edge  # noqa: F401 - registers the {…:pid} path convertor before the routes
from engine.api.deps import get_options, get_settings, get_store
from engine.api.security import bearer, require_token
from engine.config import ApiSettings, Settings
from engine.store import GraphStore

router = APIRouter(tags=["segments"])

SegmentId = Annotated[str, PathParam(min_length=1, max_length=200, description="Segment id (a `/` in it as %2F)")]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
EXPORT_FORMATS = ("csv", "parquet", "jsonl")
# Export file names the API itself makes: <segment slug>-<UTC stamp>.<fmt>
_EXPORT_NAME = re.compile(r"^[A-Za-z0-9._-]+-\d{8}T\d{6}Z\.(csv|parquet|jsonl)$")


class SegmentOut(BaseModel):
    model_config = ConfigDict(extra="allow")  # whatever else SegmentInfo carries (definition, ...)

    id: str
    name: str | None = None
    size: int | None = None
    updated_at: str | None = None


class MemberOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    user_id: str
    reason: Any = None
    confidence: float | None = None
    since: str | None = None


class MembersPage(BaseModel):
    segment: SegmentOut
    offset: int
    limit: int
    total: int | None = Field(description="segment size, when known")
    members: list[MemberOut]


class ExportRequest(BaseModel):
    format: Literal["csv", "parquet", "jsonl"] = "csv"
    hash_ids: bool = Field(default=False, description="hash user ids; without a salt the server's own "
                           "salt is used and no token is needed")
    salt: str | None = Field(default=None, max_length=200, description="a salt of your own (needs the token)")
    since: datetime | None = Field(default=None, description="only members that joined since (a delta)")


class ExportResult(BaseModel):
    segment_id: str
    file: str
    download_url: str
    manifest: dict[str, Any]


def _segment_module() -> ModuleType:
    try:
        import engine.segment as segment
    except ImportError as exc:
        raise HTTPException(501, f"segments are not available in this build ({exc})") from None
    return segment


def _dump(obj: Any) -> dict[str, Any]:
    data = obj.model_dump(mode="json") if hasattr(obj, "model_dump") else dict(obj)
    return {k: v for k, v in data.items() if v is not None}


def _get_segment(store: GraphStore, segment_id: str) -> SegmentOut:
    segment = _segment_module()
    try:
        return SegmentOut(**_dump(segment.get_segment(store, segment_id)))
    except segment.SegmentNotFound as exc:
        raise HTTPException(404, str(exc) or f"no segment with id {segment_id!r}") from None


def exports_dir(settings: Settings) -> Path:
    return settings.exports_dir


@router.get("/segments", response_model=list[SegmentOut], summary="Segments with sizes")
def list_segments(store: Annotated[GraphStore, Depends(get_store)]) -> list[SegmentOut]:
    return [SegmentOut(**_dump(s)) for s in _segment_module().list_segments(store)]


@router.get("/segments/{segment_id:pid}", response_model=SegmentOut, summary="One segment")
def segment_info(segment_id: SegmentId, store: Annotated[GraphStore, Depends(get_store)]) -> SegmentOut:
    return _get_segment(store, segment_id)


@router.get("/segments/{segment_id:pid}/members", response_model=MembersPage,
            summary="Members of a segment, paged, each with the reason it matched")
def segment_members(
    segment_id: SegmentId,
    store: Annotated[GraphStore, Depends(get_store)],
    options: Annotated[ApiSettings, Depends(get_options)],
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1)] = 100,
) -> MembersPage:
    info = _get_segment(store, segment_id)
    limit = min(limit, options.max_page)
    members = _segment_module().segment_members(store, segment_id, offset=offset, limit=limit)
    return MembersPage(segment=info, offset=offset, limit=limit, total=info.size,
                       members=[MemberOut(**_dump(m)) for m in members])


@router.post("/segments/{segment_id:pid}/export", response_model=ExportResult,
             summary="Export a segment's audience to a file (CSV / Parquet / JSONL) on the server; "
                     "raw ids or an own salt need the bearer token")
def segment_export(
    segment_id: SegmentId,
    req: ExportRequest,
    request: Request,
    credentials: Credentials,
    store: Annotated[GraphStore, Depends(get_store)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> ExportResult:
    if not req.hash_ids or req.salt:
        require_token(request, credentials)
    _get_segment(store, segment_id)
    try:
        from engine.export import ExportError, ExportWriteError, export_segment
    except ImportError as exc:
        raise HTTPException(501, f"segment export is not available in this build ({exc})") from None
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", segment_id)[:80] or "segment"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = exports_dir(settings) / f"{slug}-{stamp}.{req.format}"
    out.parent.mkdir(parents=True, exist_ok=True)
    salt = req.salt or settings.export.salt
    try:
        manifest = export_segment(store, segment_id, fmt=req.format, out=out, hash_ids=req.hash_ids,
                                  salt=salt, salt_home=settings.home, since=req.since)
    except ExportWriteError as exc:  # the server's disk, not the caller's input
        raise HTTPException(507, f"export failed: {exc}") from None
    except (ExportError, ValueError) as exc:  # bad format, bad since: the caller's input
        raise HTTPException(400, f"export refused: {exc}") from None
    return ExportResult(segment_id=segment_id, file=out.name, download_url=f"/exports/{out.name}",
                        manifest=_dump(manifest))


def _hashed_export(path: Path) -> bool:
    """True only when the export's manifest says its ids are hashed."""
    try:
        from engine.export import manifest_path

        meta = json.loads(manifest_path(path).read_text())
    except (ImportError, OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("hashed_ids") is True


@router.get("/exports/{name}", summary="Download an export file made by POST /segments/{id}/export "
            "(raw ids need the bearer token)", response_class=FileResponse)
def download_export(
    name: str, request: Request, credentials: Credentials, settings: Annotated[Settings, Depends(get_settings)]
) -> FileResponse:
    # Only names this API produced, inside the exports dir: no path tricks.
    path = exports_dir(settings) / name
    if not _EXPORT_NAME.match(name) or not path.is_file():
        raise HTTPException(404, f"no export file named {name!r}")
    if not _hashed_export(path):
        require_token(request, credentials)
    return FileResponse(path, filename=name)
