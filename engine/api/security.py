"""Bearer-token guard for the endpoints that change the graph (ingest, forget)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

# auto_error=False: a missing header gets our JSON 401, not FastAPI's 403. Declaring the scheme
# also gives /docs its "Authorize" button.
bearer = HTTPBearer(auto_error=False, description="PERSONA_API_TOKEN of the server")


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """FastAPI dependency: 401 unless `Authorization: Bearer <Settings.api.token>`."""
    expected: str | None = request.app.state.settings.api.token
    if not expected:
        # No token configured means nobody may write through HTTP, not that everybody may.
        raise HTTPException(401, "writing endpoints are disabled: set PERSONA_API_TOKEN on the server")
    if credentials is None or not credentials.credentials:
        raise HTTPException(401, "missing bearer token: send `Authorization: Bearer <token>`")
    if not hmac.compare_digest(credentials.credentials.strip().encode(), expected.encode()):
        raise HTTPException(401, "wrong bearer token")
