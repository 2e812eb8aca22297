"""Bearer-token guard for the endpoints that change the graph (ingest, forget, review judgements).

Tokens are named: `PERSONA_API_TOKENS="alice:tok1,bob:tok2"` gives each reviewer their own, and the
single `PERSONA_API_TOKEN` is the holder "api". `require_token` returns the holder's name, which the
review endpoints record with every judgement.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engine.config import ApiSettings

# auto_error=False: a missing header gets our JSON 401, not FastAPI's 403. Declaring the scheme
# also gives /docs its "Authorize" button.
bearer = HTTPBearer(auto_error=False, description="PERSONA_API_TOKEN (or a PERSONA_API_TOKENS entry) of the server")

SINGLE_TOKEN_NAME = "api"  # noqa: S105 - the holder name of PERSONA_API_TOKEN, not a secret


def known_tokens(api: ApiSettings) -> list[tuple[str, str]]:
    """(name, token) pairs the server accepts."""
    pairs = list(api.tokens.items())
    if api.token:
        pairs.append((SINGLE_TOKEN_NAME, api.token))
    return pairs


def token_name(api: ApiSettings, presented: str) -> str | None:
    """The name of the token presented, or None. Every token is compared (constant time each), so
    the answer's timing does not say which name nearly matched."""
    found = None
    for name, token in known_tokens(api):
        if hmac.compare_digest(presented.encode(), token.encode()) and found is None:
            found = name
    return found


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    """FastAPI dependency: 401 unless `Authorization: Bearer <a configured token>`; returns its name."""
    api: ApiSettings = request.app.state.settings.api
    if not known_tokens(api):
        # No token configured means nobody may write through HTTP, not that everybody may.
        raise HTTPException(401, "writing endpoints are disabled: set PERSONA_API_TOKEN (or PERSONA_API_TOKENS) "
                                 "on the server")
    if credentials is None or not credentials.credentials:
        raise HTTPException(401, "missing bearer token: send `Authorization: Bearer <token>`")
    name = token_name(api, credentials.credentials.strip())
    if name is None:
        raise HTTPException(401, "wrong bearer token")
    return name


Reviewer = Annotated[str, Depends(require_token)]
