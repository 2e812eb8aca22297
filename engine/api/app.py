"""The HTTP API and explorer UI: `create_app(settings, store)`; tests inject their own store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from engine.api import cypher, ingest, review, segments, users
from engine.api.assets import install_ui, missing_vendor_files
from engine.api.edge import HostAllowlist, SecurityHeaders, UrlGuard
from engine.api.errors import error_response, install_error_handlers
from engine.api.limits import BodySizeLimit
from engine.config import ApiSettings, Settings
from engine.store import GraphStore, StoreError, open_store

API_VERSION = "0.1.0"


class Health(BaseModel):
    status: str
    backend: str
    graph: str
    ui_assets_missing: list[str]


def _lifespan(owned: bool):
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.store is None:
            # Opened here, not in create_app, so importing the app never starts a database.
            app.state.store = open_store(app.state.settings)
        try:
            yield
        finally:
            if owned and app.state.store is not None:
                app.state.store.close()
                app.state.store = None

    return lifespan


def create_app(
    settings: Settings | None = None,
    store: GraphStore | None = None,
    *,
    options: ApiSettings | None = None,
    extractor: Any | None = None,
) -> FastAPI:
    """Build the app. Without `store`, the configured one is opened at start-up and closed at
    shutdown; an injected store belongs to the caller. `extractor` (engine.extract.Extractor-like)
    serves records on /ingest; without it one is built on first use."""
    settings = settings or Settings.from_env()
    options = options or settings.api
    app = FastAPI(
        title="Persona Engine",
        version=API_VERSION,
        description="Wikidata-grounded persona graphs: search users, see why each fact is there, "
        "segments, read-only Cypher. Writing endpoints, and exports with raw user ids, need "
        "`Authorization: Bearer <PERSONA_API_TOKEN>`; exports with hashed ids (the server's salt) do not.",
        docs_url=None,  # served by install_ui from local swagger-ui assets, not the CDN
        redoc_url=None,
        lifespan=_lifespan(owned=store is None),
    )
    app.state.settings = settings
    app.state.options = options
    app.state.store = store
    app.state.extractor = extractor
    install_error_handlers(app)
    # Innermost first: the last one added sees the request first.
    app.add_middleware(BodySizeLimit, max_bytes=options.max_body_bytes)
    app.add_middleware(UrlGuard)
    app.add_middleware(HostAllowlist, allowed=options.allowed_hosts)
    app.add_middleware(SecurityHeaders)

    @app.get("/health", response_model=Health, tags=["health"], summary="Liveness and graph reachability")
    def health(request: Request) -> Health | JSONResponse:
        st: GraphStore = request.app.state.store
        try:
            st.ro_query("RETURN 1 AS ok")
        except StoreError as exc:
            return error_response(503, f"graph store unreachable: {exc}")
        return Health(status="ok", backend=st.backend, graph=settings.graph_name,
                      ui_assets_missing=missing_vendor_files())

    for module in (users, segments, cypher, ingest, review):
        app.include_router(module.router)
    install_ui(app)
    return app
