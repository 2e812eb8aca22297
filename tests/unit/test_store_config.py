"""Backend selection and failure modes that need no running database."""

from __future__ import annotations

import socket

import pytest

from engine.config import Settings
from engine.store import StoreError, open_store
from engine.store.falkor import params_header


def test_unknown_graph_uri_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="unsupported PERSONA_GRAPH_URI"):
        open_store(Settings(graph_uri="mysql://localhost"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_neo4j_raises_store_error() -> None:
    settings = Settings(graph_uri=f"bolt://127.0.0.1:{_closed_port()}")
    with pytest.raises(StoreError, match="Neo4j is not reachable"):
        open_store(settings)


def test_unreachable_falkordb_raises_store_error() -> None:
    with pytest.raises(StoreError, match="not reachable"):
        open_store(Settings(graph_uri=f"falkordb://127.0.0.1:{_closed_port()}"))


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONA_ALLOW_SENSITIVE", "yes")
    monkeypatch.setenv("PERSONA_GRAPH_URI", "neo4j://db:7687")
    s = Settings.from_env(home="/x")
    assert s.allow_sensitive and s.graph_uri == "neo4j://db:7687" and str(s.home) == "/x"


def test_params_header_falls_back_for_escapes_falkordb_does_not_decode() -> None:
    assert params_header({"rows": [{"a": 'x"y' + chr(10)}]}) == 'CYPHER rows=[{a:"x\\"y\\n"}] '
    assert params_header({"v": "bell" + chr(7)}) is None
    assert params_header({"v": float("nan")}) is None


def test_params_header_unquotes_keys_but_not_key_like_text_inside_values() -> None:
    header = params_header({"rows": [{"id": 'say "id": 1, {"x":2}', "n": [{"id": "a,\"id\":"}]}]})
    assert header == 'CYPHER rows=[{id:"say \\"id\\": 1, {\\"x\\":2}",n:[{id:"a,\\"id\\":"}]}] '
    assert params_header({"rows": [{"not an identifier": 1}]}) is None


def test_params_header_unquotes_keys_of_maps_inside_tuples() -> None:
    assert params_header({"rows": [("a", {"k": 1})]}) == 'CYPHER rows=[["a",{k:1}]] '
