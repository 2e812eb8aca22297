"""HTTP API (FastAPI) and the graph explorer UI: `create_app`, `persona serve`."""

from engine.api.app import create_app
from engine.api.options import ApiOptions

__all__ = ["ApiOptions", "create_app"]
