"""Engine settings, read from PERSONA_* environment variables (and CLI options that override them)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field


def _env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


class Settings(BaseModel):
    home: Path = Field(default=Path(".persona"))
    # "embedded" = the FalkorDB child process; falkordb://host:port; neo4j://, bolt://, neo4j+s://
    graph_uri: str = "embedded"
    graph_name: str = "persona"
    neo4j_user: str = "neo4j"
    neo4j_password: str = "neo4j"  # noqa: S105 - Neo4j's own default; set PERSONA_NEO4J_PASSWORD
    neo4j_database: str | None = None
    allow_sensitive: bool = False
    store_text: bool = True
    api_token: str | None = None

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {
            "home": Path(env.get("PERSONA_HOME", ".persona")),
            "graph_uri": env.get("PERSONA_GRAPH_URI", "embedded"),
            "graph_name": env.get("PERSONA_GRAPH_NAME", "persona"),
            "neo4j_user": env.get("PERSONA_NEO4J_USER", "neo4j"),
            "neo4j_password": env.get("PERSONA_NEO4J_PASSWORD", "neo4j"),
            "neo4j_database": env.get("PERSONA_NEO4J_DATABASE") or None,
            "allow_sensitive": _env_bool("PERSONA_ALLOW_SENSITIVE"),
            "store_text": _env_bool("PERSONA_STORE_TEXT", True),
            "api_token": env.get("PERSONA_API_TOKEN") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
