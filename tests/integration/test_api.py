"""The HTTP API against the real embedded FalkorDB (a fresh graph per test, demo data loaded)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.api import create_app
from engine.api.users import STATEMENTS as USER_STATEMENTS
from engine.config import ApiSettings, Settings
from engine.contracts import DocumentSentiment, Fact
from engine.extract import ExtractionResult
from engine.ingest import FactLine, read_fact_lines
from engine.pipeline import apply_fact_lines
from engine.store import QueryResult, StoreError
from tests.cypherlint import lint_statements

pytestmark = pytest.mark.integration

TOKEN = "test-token"  # noqa: S105 - a test value
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "http://localhost"  # an allowed Host (TestClient's own "testserver" is not)


def demo_lines() -> list[FactLine]:
    with as_file(files("engine.examples").joinpath("demo_facts.jsonl")) as path:
        return [f for _, f in read_fact_lines(Path(path)) if isinstance(f, FactLine)]


class FakeExtractor:
    """Stands in for the LLM: the records path (dedupe, redaction, fusion) is real."""

    version = "fake-extractor-1"

    def extract(self, text: str, lang: str = "en") -> ExtractionResult:
        facts = [Fact(predicate="LIKES", object="tea", confidence=0.9, evidence="tea")] if "tea" in text else []
        return ExtractionResult(facts=facts, sentiment=DocumentSentiment(label="positive", confidence=0.8))


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"api": ApiSettings(token=TOKEN)})


@pytest.fixture
def client(store, api_settings: Settings) -> Iterator[TestClient]:
    apply_fact_lines(store, api_settings, demo_lines())
    app = create_app(api_settings, store, options=ApiSettings(max_body_bytes=64 * 1024, cypher_max_rows=50,
                                                             cypher_timeout_ms=2000),
                     extractor=FakeExtractor())
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        yield c


def assert_error(resp: Any, status: int, fragment: str = "") -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["status"] == status and isinstance(body["message"], str) and body["message"]
    assert fragment.lower() in body["message"].lower(), body["message"]
    return body


# --- health, search, persona --------------------------------------------------------------------


def test_health(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["backend"] == "falkordb"
    assert body["ui_assets_missing"] == [], "run `npm ci --prefix engine/ui`"


@pytest.mark.parametrize(("q", "expected", "via"), [
    ("", ["ana", "luis", "mei"], None),
    ("LUI", ["luis"], None),  # id, case-insensitive
    ("berlin", ["ana"], "Berlin"),  # entity label (en)
    ("上海", ["mei"], "Shanghai"),  # entity label (zh)
    ("Q64", ["ana"], "Berlin"),  # QID
    ("vegetarian", ["luis"], "diet: vegetarian"),  # literal value
])
def test_search_users_by_id_or_entity_label(client: TestClient, q: str, expected: list[str],
                                            via: str | None) -> None:
    body = client.get("/users", params={"q": q}).json()
    assert [u["id"] for u in body["users"]] == expected
    assert body["users"][0]["match"] == ("entity" if via else "id")
    assert body["users"][0]["via"] == via


def test_search_lists_id_matches_before_entity_matches(client: TestClient) -> None:
    users = client.get("/users", params={"q": "an"}).json()["users"]
    assert users[0] == {**users[0], "id": "ana", "match": "id"}
    assert {u["match"] for u in users[1:]} == {"entity"}  # e.g. mei via "English"


def test_persona_has_facts_with_status_validity_and_evidence_text(client: TestClient) -> None:
    body = client.get("/users/ana").json()
    facts = {(f["predicate"], f["label"]): f for f in body["facts"]}
    berlin, beijing = facts[("LIVES_IN", "Berlin")], facts[("LIVES_IN", "Beijing")]
    assert berlin["status"] == "active" and berlin["confidence"] == pytest.approx(0.9)
    assert beijing["status"] == "superseded" and beijing["valid_to"] == "2024-06-10T18:30:00Z"
    assert berlin["first_seen"] == berlin["last_seen"] == "2024-06-10T18:30:00Z"
    [doc] = berlin["evidence_documents"]
    assert doc["id"] == "ana-2" and doc["text"] == "Just moved to Berlin, loving the coffee here."
    assert facts[("LIKES", "coffee")]["status"] == "superseded"
    assert {c["rule"] for c in body["conflicts"]} == {"functional", "exclusive"}
    assert body["user"]["id"] == "ana" and body["segments"] == []


def test_unknown_user_is_404_with_message(client: TestClient) -> None:
    assert_error(client.get("/users/nobody"), 404, "no user with id 'nobody'")
    assert_error(client.get("/users/nobody/graph"), 404, "nobody")


def test_graph_has_facts_statuses_and_wikidata_context(client: TestClient) -> None:
    graph = client.get("/users/mei/graph").json()
    nodes = {n["id"]: n for n in graph["nodes"]}
    ids = [n["id"] for n in graph["nodes"]] + [e["id"] for e in graph["edges"]]
    assert len(ids) == len(set(ids)), "node and edge ids must not collide (Cytoscape)"
    assert all(e["source"] in nodes and e["target"] in nodes for e in graph["edges"])
    by_type: dict[str, list[dict]] = {}
    for e in graph["edges"]:
        by_type.setdefault(e["type"], []).append(e)
    [obama] = [e for e in by_type["LIVES_IN"] if nodes[e["target"]]["caption"] == "Barack Obama"]
    assert obama["status"] == "quarantined" and "docs" not in obama["properties"]
    # One hop up: Shanghai's P31 classes, with the edge starting at the fact object.
    shanghai = next(n["id"] for n in graph["nodes"] if n["caption"] == "Shanghai")
    assert any(e["source"] == shanghai for e in by_type["INSTANCE_OF"])
    assert next(n for n in graph["nodes"] if n["kind"] == "User")["caption"] == "mei"


def test_graph_context_is_capped_per_entity(store, api_settings: Settings) -> None:
    apply_fact_lines(store, api_settings, demo_lines())
    app = create_app(api_settings, store, options=ApiSettings(graph_context_per_entity=1))
    graph = TestClient(app, base_url=BASE).get("/users/ana/graph").json()
    context = [e for e in graph["edges"] if e["type"] in {"INSTANCE_OF", "SUBCLASS_OF", "LOCATED_IN"}]
    sources = [e["source"] for e in context]
    assert context and len(sources) == len(set(sources))


# --- cypher ------------------------------------------------------------------------------------


def test_cypher_returns_table_and_graph(client: TestClient) -> None:
    resp = client.post("/cypher", json={
        "query": "MATCH (u:User {id: $id})-[f:LIVES_IN]->(c:Entity) RETURN u, f, c.label_en AS city ORDER BY city",
        "params": {"id": "ana"},
    })
    body = resp.json()
    assert resp.status_code == 200 and body["columns"] == ["u", "f", "city"]
    assert [r[2] for r in body["rows"]] == ["Beijing", "Berlin"]
    assert body["rows"][0][0]["_labels"] == ["User"] and body["rows"][0][1]["_type"] == "LIVES_IN"
    assert len(body["graph"]["edges"]) == 2
    node_ids = {n["id"] for n in body["graph"]["nodes"]}
    assert all(e["source"] in node_ids and e["target"] in node_ids for e in body["graph"]["edges"])
    assert body["truncated"] is False and body["row_count"] == 2


def test_cypher_row_limit_truncates(client: TestClient) -> None:
    body = client.post("/cypher", json={"query": "UNWIND range(1, 500) AS x RETURN x", "limit": 10}).json()
    assert len(body["rows"]) == 10 and body["truncated"] is True and body["row_count"] == 500
    capped = client.post("/cypher", json={"query": "UNWIND range(1, 500) AS x RETURN x", "limit": 10_000}).json()
    assert capped["limit"] == 50 and len(capped["rows"]) == 50  # the server's cap wins


@pytest.mark.parametrize("query", [
    "CREATE (:User {id: 'intruder'})",
    "MATCH (u:User {id: 'ana'}) SET u.n_docs = 0",
    "MATCH (u:User {id: 'ana'}) DETACH DELETE u",
    "MERGE (:Segment {id: 'x'})",
    "CALL db.idx.fulltext.createNodeIndex('User', 'id')",
])
def test_cypher_refuses_writes_with_400(client: TestClient, store, query: str) -> None:
    assert_error(client.post("/cypher", json={"query": query}), 400, "read-only")
    assert store.ro_query("MATCH (u:User {id: 'ana'}) RETURN u.n_docs").scalar() == 3
    assert store.ro_query("MATCH (n) WHERE n.id IN ['intruder', 'x'] RETURN count(n)").scalar() == 0


def test_cypher_syntax_error_and_timeout(client: TestClient) -> None:
    assert_error(client.post("/cypher", json={"query": "MATCH (n RETURN n"}), 400, "query failed")
    # Nested small ranges: FalkorDB checks the timeout per record, not while building one huge list.
    slow = "UNWIND range(1, 5000) AS x UNWIND range(1, 5000) AS y WITH x, y WHERE (x * y) % 7 = 3 RETURN count(*)"
    assert_error(client.post("/cypher", json={"query": slow, "timeout_ms": 50}), 408, "timed out")


# --- ingest and forget (token) -----------------------------------------------------------------

FACT = {"doc_id": "z-1", "user_id": "zoe", "ts": "2024-05-01T10:00:00Z", "predicate": "LIVES_IN",
        "object": "Berlin", "object_qid": "Q64", "object_types": ["Q515"], "text": "Berlin is home now"}


def test_ingest_and_forget_need_the_token(client: TestClient) -> None:
    body = {"facts": [FACT]}
    assert_error(client.post("/ingest", json=body), 401, "missing bearer token")
    assert_error(client.post("/ingest", json=body, headers={"Authorization": "Bearer nope"}), 401, "wrong")
    assert_error(client.post("/ingest", json=body, headers={"Authorization": f"Basic {TOKEN}"}), 401)
    assert_error(client.delete("/users/ana"), 401)
    assert client.get("/users/ana").status_code == 200


def test_write_endpoints_disabled_without_configured_token(store, settings: Settings) -> None:
    c = TestClient(create_app(settings, store), base_url=BASE)  # settings.api.token is None
    assert_error(c.post("/ingest", json={"facts": [FACT]}, headers=AUTH), 401, "PERSONA_API_TOKEN")


def test_ingest_facts_json_reports_bad_lines(client: TestClient) -> None:
    bad = {**FACT, "doc_id": "z-2", "predicate": "LOVES"}
    no_object = {k: v for k, v in FACT.items() if k not in ("object", "object_qid")} | {"doc_id": "z-3"}
    resp = client.post("/ingest", json={"facts": [FACT, bad, no_object]}, headers=AUTH)
    assert resp.status_code == 200, resp.text
    facts = resp.json()["facts"]
    assert facts["lines"] == 3 and facts["facts_applied"] == 1 and facts["failed"] == 2
    assert [(e["line"], e["field"]) for e in facts["errors"]] == [(2, "predicate"), (3, "record")]
    persona = client.get("/users/zoe").json()
    assert persona["facts"][0]["evidence_documents"][0]["text"] == "Berlin is home now"


def test_ingest_ndjson_body(client: TestClient) -> None:
    lines = [FACT, {**FACT, "doc_id": "z-2", "predicate": "LIKES", "object": "tea", "object_qid": None,
                    "object_types": []}]
    ndjson = "\n".join(json.dumps(x) for x in lines) + "\n\n{not json\n"
    resp = client.post("/ingest", content=ndjson.encode(), headers={**AUTH, "Content-Type": "application/x-ndjson"})
    facts = resp.json()["facts"]
    assert facts["facts_applied"] == 2 and facts["errors"][0]["line"] == 4
    assert {f["predicate"] for f in client.get("/users/zoe").json()["facts"]} == {"LIVES_IN", "LIKES"}


def test_ingest_records_go_through_redaction_and_extraction(client: TestClient) -> None:
    records = [
        {"user_id": "rec", "doc_id": "r1", "ts": "2024-03-01T00:00:00Z", "source": "chat",
         "text": "I drink green tea every day, call me on +1 415 555 0100"},
        {"user_id": "rec", "doc_id": "r1", "ts": "2024-03-01T00:00:00Z", "text": "duplicate"},
        {"user_id": "", "ts": "2024-03-01T00:00:00Z", "text": "no user"},
    ]
    resp = client.post("/ingest", json={"records": records}, headers=AUTH)
    assert resp.status_code == 200, resp.text
    summary = resp.json()["records"]
    assert summary["documents"] == {"ok": 1, "duplicate": 1} and summary["facts_applied"] == 1
    assert len(summary["record_errors"]) == 1 and "user_id" in summary["record_errors"][0]
    [fact] = client.get("/users/rec").json()["facts"]
    text = fact["evidence_documents"][0]["text"]
    assert fact["predicate"] == "LIKES" and "415 555" not in text and "green tea" in text


def test_ingest_bad_bodies(client: TestClient) -> None:
    assert_error(client.post("/ingest", content=b"{nope", headers={**AUTH, "Content-Type": "application/json"}),
                 400, "not valid JSON")
    assert_error(client.post("/ingest", json={}, headers=AUTH), 422, "nothing to ingest")
    assert_error(client.post("/ingest", json={"fact": []}, headers=AUTH), 422, "unknown body fields")
    assert_error(client.post("/ingest", json=[FACT], headers=AUTH), 422, "must be an object")


def test_forget_user(client: TestClient, store) -> None:
    resp = client.delete("/users/ana", headers=AUTH)
    assert resp.status_code == 200 and resp.json()["removed"] is True
    assert_error(client.get("/users/ana"), 404)
    assert store.ro_query("MATCH (d:Document {user_id: 'ana'}) RETURN count(d)").scalar() == 0
    assert_error(client.delete("/users/ana", headers=AUTH), 404, "no user")


# --- limits and error shapes -------------------------------------------------------------------


def test_oversized_bodies_are_413(client: TestClient) -> None:
    big = {"query": "RETURN 1", "params": {"blob": "x" * 70_000}}
    assert_error(client.post("/cypher", json=big), 413, "too large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the middleware counts what arrives
        yield b'{"facts": ['
        for _ in range(100):
            yield b'"' + b"y" * 1000 + b'",'
        yield b'""]}'

    assert_error(client.post("/ingest", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}),
                 413, "65536 bytes")


def test_validation_errors_are_json_422(client: TestClient) -> None:
    body = assert_error(client.get("/users", params={"limit": 0}), 422, "limit")
    assert body["errors"][0]["loc"] == ["query", "limit"]
    assert_error(client.post("/cypher", json={"params": {}}), 422, "query")
    assert_error(client.get("/segments/x/members", params={"offset": -1}), 422, "offset")


class BrokenStore:
    backend = "falkordb"

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def query(self, cypher: str, params: dict[str, Any] | None = None) -> QueryResult:
        raise self.exc

    def ro_query(self, cypher: str, params: dict[str, Any] | None = None, timeout_ms: int | None = None):
        raise self.exc

    def ensure_schema(self) -> None: ...

    def close(self) -> None: ...


def test_internal_and_store_errors_are_json(settings: Settings) -> None:
    c = TestClient(create_app(settings, BrokenStore(RuntimeError("boom"))), base_url=BASE,
                   raise_server_exceptions=False)
    assert_error(c.get("/users/ana"), 500, "internal error (RuntimeError)")
    down = TestClient(create_app(settings, BrokenStore(StoreError("FalkorDB is not reachable"))), base_url=BASE)
    assert_error(down.get("/users/ana"), 503, "not reachable")
    assert_error(down.get("/health"), 503, "unreachable")
    assert_error(down.get("/nowhere"), 404)


# --- segments ----------------------------------------------------------------------------------


@pytest.fixture
def sport_fans(store) -> str:
    segment = pytest.importorskip("engine.segment", reason="segments (issue 4) not in this build")
    segment.apply_definition(store, {"id": "sport-fans", "name": "Sport fans",
                                     "where": {"likes": {"descendant_of": "Q349"}}})
    segment.run_segment(store, "sport-fans")
    return "sport-fans"


def test_segments_list_and_members_paged_with_reasons(client: TestClient, sport_fans: str) -> None:
    [seg] = client.get("/segments").json()
    assert seg["id"] == sport_fans and seg["size"] == 3 and seg["name"] == "Sport fans"  # ana, luis, mei (tennis)
    page = client.get(f"/segments/{sport_fans}/members", params={"limit": 1}).json()
    assert page["total"] == 3 and page["limit"] == 1
    [first] = page["members"]
    assert first["user_id"] == "ana" and "basketball" in first["reason"] and first["confidence"] > 0
    second = client.get(f"/segments/{sport_fans}/members", params={"offset": 1, "limit": 1}).json()
    assert [m["user_id"] for m in second["members"]] == ["luis"]
    assert client.get("/users/ana").json()["segments"][0]["segment_id"] == sport_fans
    graph = client.get("/users/ana/graph").json()
    assert any(e["type"] == "MEMBER_OF" for e in graph["edges"])
    assert_error(client.get("/segments/nope/members"), 404, "no segment")
    assert_error(client.get("/segments/nope"), 404)


def test_segment_export_writes_a_downloadable_file(client: TestClient, sport_fans: str) -> None:
    resp = client.post(f"/segments/{sport_fans}/export", json={"format": "csv"}, headers=AUTH)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["manifest"]["rows"] == 3 and body["file"].endswith(".csv")
    download = client.get(body["download_url"], headers=AUTH)
    assert download.status_code == 200 and "ana" in download.text and "luis" in download.text
    hashed = client.post(f"/segments/{sport_fans}/export", json={"format": "jsonl", "hash_ids": True,
                                                                 "salt": "pepper"}, headers=AUTH).json()
    assert "ana" not in client.get(hashed["download_url"]).text
    assert_error(client.post(f"/segments/{sport_fans}/export", json={"format": "xml"}), 422)
    assert_error(client.get("/exports/..%2F..%2Fetc%2Fpasswd"), 404)
    assert_error(client.post("/segments/nope/export", json={}, headers=AUTH), 404)
    assert_error(client.post("/segments/nope/export", json={"hash_ids": True}), 404)


def test_segment_export_hash_without_salt_uses_the_home_salt(client: TestClient, sport_fans: str,
                                                              api_settings: Settings) -> None:
    body = client.post(f"/segments/{sport_fans}/export", json={"hash_ids": True}).json()
    salt_file = Path(api_settings.home) / "export-salt"
    assert body["manifest"]["salt_source"] == "home" and salt_file.stat().st_mode & 0o777 == 0o600
    assert salt_file.read_text().strip() not in json.dumps(body)


# --- UI, docs, dialect -------------------------------------------------------------------------


def test_ui_and_offline_docs_are_served(client: TestClient) -> None:
    index = client.get("/")
    assert index.status_code == 200 and "/vendor/cytoscape.min.js" in index.text
    docs = client.get("/docs").text
    assert "/vendor/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    for asset in ("cytoscape.min.js", "swagger-ui-bundle.js", "swagger-ui.css"):
        assert client.get(f"/vendor/{asset}").status_code == 200
    assert_error(client.get("/vendor/../../pyproject.toml"), 404)
    assert client.get("/static/app.js").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_api_cypher_passes_neo4j_linter() -> None:
    statements = [*USER_STATEMENTS, "RETURN 1 AS ok"]
    results = lint_statements(statements)
    problems = [(r.statement, r.errors) for r in results if r.errors]
    assert not problems, problems
