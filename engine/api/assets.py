"""The explorer UI and the offline /docs page. Third-party browser code (Cytoscape.js, Chart.js,
swagger-ui-dist) comes from engine/ui/node_modules, installed by `npm ci --prefix engine/ui` at
set-up: nothing is loaded from a CDN, so both pages work without internet."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
STATIC_DIR = UI_DIR / "static"
NODE_MODULES = UI_DIR / "node_modules"
INSTALL_HINT = "run `npm ci --prefix engine/ui` (part of `make setup`)"

# URL name → file inside node_modules; a whitelist, so no path from the request reaches the disk.
VENDOR_FILES: dict[str, Path] = {
    "cytoscape.min.js": NODE_MODULES / "cytoscape" / "dist" / "cytoscape.min.js",
    "chart.umd.min.js": NODE_MODULES / "chart.js" / "dist" / "chart.umd.min.js",
    "swagger-ui-bundle.js": NODE_MODULES / "swagger-ui-dist" / "swagger-ui-bundle.js",
    "swagger-ui.css": NODE_MODULES / "swagger-ui-dist" / "swagger-ui.css",
    "favicon-32x32.png": NODE_MODULES / "swagger-ui-dist" / "favicon-32x32.png",
}

router = APIRouter(include_in_schema=False)


def missing_vendor_files() -> list[str]:
    return [name for name, path in VENDOR_FILES.items() if not path.is_file()]


@router.get("/")
def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get("/vendor/{name}")
def vendor(name: str) -> FileResponse:
    path = VENDOR_FILES.get(name)
    if path is None:
        raise HTTPException(404, f"no vendored asset {name!r}")
    if not path.is_file():
        raise HTTPException(503, f"{name} is not installed: {INSTALL_HINT}")
    # Pinned by package-lock.json, so a browser may keep it for a day.
    return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})


def install_ui(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API docs",
            swagger_js_url="/vendor/swagger-ui-bundle.js",
            swagger_css_url="/vendor/swagger-ui.css",
            swagger_favicon_url="/vendor/favicon-32x32.png",
        )
