"""HTTP API (FastAPI) and the graph explorer UI: `create_app`, `persona serve`."""

from engine.api.app import create_app

__all__ = ["create_app"]
