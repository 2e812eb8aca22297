"""Limits of the HTTP API, read from PERSONA_API_* variables (kept apart from Settings, which the
pipeline shares, so the API can tune them without touching the engine's configuration)."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
WILDCARD_BINDS = {"0.0.0.0", "::", "*"}  # noqa: S104 - names to recognise, not to bind


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw and raw.strip().isdigit() else default


class ApiOptions(BaseModel):
    # Request bodies above this are refused with 413 before the handler reads them.
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    # /cypher: rows returned at most (the rest is cut and flagged) and the database-side timeout.
    cypher_max_rows: int = Field(default=1000, ge=1)
    cypher_timeout_ms: int = Field(default=10_000, ge=1)
    # /users/{id}/graph: context parents drawn per entity, so a hub (a country) stays readable.
    graph_context_per_entity: int = Field(default=8, ge=0)
    # /segments/{id}/members page size cap.
    max_page: int = Field(default=1000, ge=1)
    # Host header names served (DNS rebinding protection); "*.example.org" allows subdomains, "*"
    # any host. The bind host is added by with_bind_host().
    allowed_hosts: list[str] = Field(default_factory=lambda: list(DEFAULT_HOSTS), min_length=1)

    def with_bind_host(self, host: str) -> ApiOptions:
        """These options with the interface the server binds added to the allowed hosts (a
        wildcard bind such as 0.0.0.0 names no host: list the public names in allowed_hosts)."""
        name = host.strip().strip("[]").lower()
        if not name or name in WILDCARD_BINDS or name in self.allowed_hosts:
            return self
        return self.model_copy(update={"allowed_hosts": [*self.allowed_hosts, name]})

    @classmethod
    def from_env(cls) -> ApiOptions:
        return cls(
            max_body_bytes=_env_int("PERSONA_API_MAX_BODY_BYTES", 10 * 1024 * 1024),
            cypher_max_rows=_env_int("PERSONA_API_CYPHER_MAX_ROWS", 1000),
            cypher_timeout_ms=_env_int("PERSONA_API_CYPHER_TIMEOUT_MS", 10_000),
        )
