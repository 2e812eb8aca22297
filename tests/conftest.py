"""Shared fixtures: one real embedded FalkorDB per test session, a fresh graph per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import Settings
from engine.store import EmbeddedFalkorDB, ServerStatus
from engine.store.falkor import FalkorStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def falkor_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerStatus]:
    home = tmp_path_factory.mktemp("persona-home")
    server = EmbeddedFalkorDB(home)
    status = server.start()
    yield status
    server.stop()


@pytest.fixture
def graph_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(falkor_server: ServerStatus, graph_name: str) -> Iterator[FalkorStore]:
    s = FalkorStore("127.0.0.1", int(falkor_server.port or 0), graph_name, password=falkor_server.password)
    s.ensure_schema()
    yield s
    try:
        s.query("MATCH (n) DETACH DELETE n")
    finally:
        s.close()


@pytest.fixture
def settings(tmp_path: Path, falkor_server: ServerStatus, graph_name: str) -> Settings:
    return Settings(
        home=tmp_path / "home",
        graph_uri=falkor_server.graph_uri(),
        graph_name=graph_name,
    )


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    return {
        "PERSONA_HOME": str(settings.home),
        "PERSONA_GRAPH_URI": settings.graph_uri,
        "PERSONA_GRAPH_NAME": settings.graph_name,
        "COLUMNS": "200",
    }
