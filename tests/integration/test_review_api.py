"""The review endpoints against the real embedded FalkorDB: auth (named tokens), validation,
concurrency (two reviewers on one document), quality; and the `persona review` commands."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from engine.api import create_app
from engine.cli import app as cli
from engine.config import ApiSettings, Settings
from engine.review import judge as judge_module
from tests import reviewdata

pytestmark = pytest.mark.integration

ALICE = {"Authorization": "Bearer alice-token"}
BOB = {"Authorization": "Bearer bob-token"}
SINGLE = {"Authorization": "Bearer the-single-token"}
BASE = "http://localhost"


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"api": ApiSettings(token="the-single-token",  # noqa: S106
                                                          tokens={"alice": "alice-token", "bob": "bob-token"})})


@pytest.fixture
def client(store, api_settings: Settings) -> Iterator[TestClient]:
    reviewdata.load(store, api_settings)
    with TestClient(create_app(api_settings, store), base_url=BASE, raise_server_exceptions=False) as c:
        yield c


def error(resp: Any, status: int, fragment: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["status"] == status and fragment.lower() in body["message"].lower(), body


def new_batch(client: TestClient, **body: Any) -> str:
    resp = client.post("/review/batches", json={"n": 10, "since": "2024-01-01", "seed": 1, **body}, headers=ALICE)
    assert resp.status_code == 201, resp.text
    assert resp.json()["batch"]["created_by"] == "alice"
    return resp.json()["batch"]["id"]


def items(client: TestClient, batch: str) -> dict[str, dict[str, Any]]:
    out = {d: client.get(f"/review/batches/{batch}/items/{d}").json() for d in reviewdata.DOCS}
    return out | {"_batch": {"id": batch}}


def test_writes_need_a_known_token_and_reads_do_not(client: TestClient) -> None:
    error(client.post("/review/batches", json={"n": 2}), 401, "missing bearer token")
    error(client.post("/review/batches", json={"n": 2}, headers={"Authorization": "Bearer nope"}), 401, "wrong")
    batch = new_batch(client)
    assert client.get("/review/batches").json()[0]["id"] == batch
    detail = client.get(f"/review/batches/{batch}").json()
    assert detail["batch"]["size"] == 4 and len(detail["items"]) == 4
    body = reviewdata.judgements(items(client, batch))["d1"]
    error(client.put(f"/review/batches/{batch}/items/d1", json=body), 401, "missing bearer token")
    error(client.put(f"/review/batches/{batch}/items/d1", json=body, headers={"Authorization": "Bearer x"}), 401,
          "wrong bearer token")
    assert client.get(f"/review/batches/{batch}/items/d1").json()["state"] == "pending"
    options = client.get("/review/options").json()
    assert "LIKES" in options["predicates"] and "RELIGION" not in options["predicates"]


def test_judgement_records_the_token_name_and_time(client: TestClient) -> None:
    batch = new_batch(client)
    bodies = reviewdata.judgements(items(client, batch))
    resp = client.put(f"/review/batches/{batch}/items/d2", json=bodies["d2"], headers=BOB)
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["rejected"] == 1 and result["confirmed"] == 1 and result["added"] == 1
    item = result["item"]
    assert item["judged_by"] == "bob" and item["rev"] == 1 and item["state"] == "done"
    assert {j["reviewer"] for j in item["judgements"]} == {"bob"} and all(j["ts"] for j in item["judgements"])
    assert item["current_status"][reviewdata.ref(item, "LIKES", "rain")] == "rejected"
    resp = client.put(f"/review/batches/{batch}/items/d1", json=bodies["d1"], headers=SINGLE)
    assert resp.json()["item"]["judged_by"] == "api"  # the single PERSONA_API_TOKEN's holder


def test_bad_judgements_are_clear_4xx_and_write_nothing(client: TestClient, store) -> None:
    batch = new_batch(client)
    its = items(client, batch)
    good = reviewdata.judgements(its)
    url = f"/review/batches/{batch}/items"
    before = store.ro_query("MATCH ()-[f]->() RETURN collect(properties(f))").rows[0][0]

    error(client.put("/review/batches/nope/items/d1", json=good["d1"], headers=ALICE), 404, "no review batch")
    error(client.put(f"{url}/d99", json=good["d1"], headers=ALICE), 404, "not in review batch")
    error(client.get(f"{url}/d99"), 404, "not in review batch")
    error(client.put(f"{url}/d1", json=good["d1"] | {"facts": good["d1"]["facts"][:1]}, headers=ALICE), 422,
          "no verdict")
    error(client.put(f"{url}/d1", json=good["d1"] | {"extra": 1}, headers=ALICE), 422, "extra")
    error(client.put(f"{url}/d1", json=good["d1"] | {"facts": [*good["d1"]["facts"], {"ref": "LIKES:Q1",
                                                                                      "verdict": "wrong"}]},
                     headers=ALICE), 422, "not one of document")
    fix = json.loads(json.dumps(good["d3"]))
    fix["facts"][1]["predicate"] = "OWNS_SPACESHIP"
    error(client.put(f"{url}/d3", json=fix, headers=ALICE), 422, "unknown predicate 'OWNS_SPACESHIP'")
    error(client.put(f"{url}/d2", json=good["d2"] | {"missing": [{"predicate": "LIKES", "object": "snow",
                                                                  "evidence": "snow"}]}, headers=ALICE),
          422, "not in the document's text")
    error(client.put(f"{url}/d4", json=good["d4"] | {"missing": [{"predicate": "WORKS_AS", "object": "x",
                                                                  "span": [10, 40]}]}, headers=ALICE),
          422, "span [10, 40) is not in the text")
    error(client.put(f"{url}/d1", json=good["d1"] | {"sentiment": {"verdict": "wrong"}}, headers=ALICE), 422,
          "needs the right label")
    error(client.put(f"{url}/d1", json=good["d1"] | {"sentiment": {"verdict": "wrong", "label": "angry"}},
                     headers=ALICE), 422, "sentiment.label")
    assert store.ro_query("MATCH ()-[f]->() RETURN collect(properties(f))").rows[0][0] == before
    assert store.ro_query("MATCH (j:Judgement) RETURN count(j)").scalar() == 0

    # a stale rev, a fact that no longer exists, a document forgotten after sampling
    assert client.put(f"{url}/d1", json=good["d1"], headers=ALICE).status_code == 200
    error(client.put(f"{url}/d1", json=good["d1"], headers=BOB), 409, "judged by alice")
    store.query("MATCH (u:User {id: 'luis'})-[f:LIVES_IN]->() DELETE f")
    error(client.put(f"{url}/d3", json=good["d3"], headers=ALICE), 409, "no longer exists")
    assert client.delete("/users/ana", headers=ALICE).status_code == 200
    batch_after = client.get(f"/review/batches/{batch}").json()
    assert (batch_after["batch"]["size"], batch_after["batch"]["forgotten"], len(batch_after["items"])) == (4, 2, 2)
    error(client.get(f"{url}/d1"), 410, "stale")  # ana's items are tombstones now
    error(client.put(f"{url}/d2", json=good["d2"], headers=ALICE), 410, "stale")
    store.query("MATCH (d:Document {id: 'd4'}) DETACH DELETE d")
    error(client.get(f"{url}/d4"), 410, "stale")
    error(client.put(f"{url}/d4", json=good["d4"], headers=ALICE), 410, "stale")


@pytest.mark.parametrize("bypass_lock", [False, True], ids=["one-process", "compare-and-set-only"])
def test_two_reviewers_on_the_same_document(client: TestClient, store, monkeypatch, bypass_lock: bool) -> None:
    if bypass_lock:  # as if the two requests came through two server processes
        monkeypatch.setattr(judge_module, "_lock", lambda key: threading.Lock())
    batch = new_batch(client)
    body = reviewdata.judgements(items(client, batch))["d2"]
    wrong_tea = json.loads(json.dumps(body))
    wrong_tea["facts"][1]["verdict"] = "wrong"
    barrier = threading.Barrier(2)
    answers: dict[str, Any] = {}

    def put(who: str, headers: dict[str, str], payload: dict[str, Any]) -> None:
        barrier.wait()
        answers[who] = client.put(f"/review/batches/{batch}/items/d2", json=payload, headers=headers)

    threads = [threading.Thread(target=put, args=("alice", ALICE, body)),
               threading.Thread(target=put, args=("bob", BOB, wrong_tea))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    codes = sorted(r.status_code for r in answers.values())
    assert codes == [200, 409], {k: v.text for k, v in answers.items()}
    winner = next(k for k, r in answers.items() if r.status_code == 200)
    item = client.get(f"/review/batches/{batch}/items/d2").json()
    assert item["judged_by"] == winner and item["rev"] == 1
    assert {j["reviewer"] for j in item["judgements"]} == {winner}
    tea = item["current_status"][reviewdata.ref(item, "LIKES", "tea")]
    assert tea == ("active" if winner == "alice" else "rejected")  # only the winner's effects


def test_quality_endpoint_and_alert_field(client: TestClient) -> None:
    batch = new_batch(client)
    assert client.get("/review/quality").json()["batches"][0]["metrics"] is None
    for doc, body in reviewdata.judgements(items(client, batch)).items():
        assert client.put(f"/review/batches/{batch}/items/{doc}", json=body, headers=ALICE).status_code == 200
    q = client.get("/review/quality").json()
    facts = q["batches"][0]["metrics"]["facts"]
    assert (facts["tp"], facts["fp"], facts["fn"]) == (4, 2, 3)
    assert facts["f1"]["value"] == pytest.approx(8 / 13) and facts["f1"]["low"] < facts["f1"]["high"]
    assert q["alert"] is None and q["alert_points"] == 5.0 and "Wilson" in q["note"]


# --- the CLI --------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_sample_report_export(store, settings, cli_env, tmp_path: Path) -> None:
    reviewdata.load(store, settings)
    res = runner.invoke(cli, ["review", "sample", "--n", "4", "--since", "2024-01-01", "--stratify", "lang",
                              "--seed", "2", "--name", "may", "--json"], env=cli_env)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["strata"] == {"en": 2, "es": 2}
    bad = runner.invoke(cli, ["review", "sample", "--n", "4", "--stratify", "colour"], env=cli_env)
    assert bad.exit_code == 2 and "stratify" in bad.output
    from engine.review import DocumentJudgement, get_item, judge_document

    its = {d: get_item(store, "may", d).model_dump() for d in reviewdata.DOCS} | {"_batch": {"id": "may"}}
    for doc, body in reviewdata.judgements(its).items():
        judge_document(store, settings, "may", doc, DocumentJudgement(**body), "alice")
    res = runner.invoke(cli, ["review", "report", "--json"], env=cli_env)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["batches"][0]["metrics"]["facts"]["tp"] == 4
    text = runner.invoke(cli, ["review", "report"], env=cli_env)
    assert "0.615 [" in text.stdout and "by language" in text.stdout and "wide interval" in text.stdout
    out = tmp_path / "train.jsonl"
    res = runner.invoke(cli, ["review", "export", "--format", "train", "--out", str(out), "--json"], env=cli_env)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["sentiment_examples"] == 4 and len(out.read_text().splitlines()) == 8
    assert runner.invoke(cli, ["review", "export", "--format", "csv"], env=cli_env).exit_code == 2


def test_cli_report_exit_code_on_drift(store, settings, cli_env) -> None:
    from datetime import UTC, datetime

    from engine.review import DocumentJudgement, get_batch, get_item, judge_document, sample_batch

    reviewdata.load(store, settings)
    for name, verdict, month in (("may", "correct", 5), ("june", "wrong", 6)):
        sample_batch(store, 2, since="2024-05-02", seed=0, name=name,
                     now=datetime(2024, month, 28, tzinfo=UTC))
        for doc in [i.doc_id for i in get_batch(store, name).items if i.n_facts]:
            item = get_item(store, name, doc).model_dump()
            judge_document(store, settings, name, doc, DocumentJudgement(
                rev=0, sentiment={"verdict": "correct"},
                facts=[{"ref": f["ref"], "verdict": verdict} for f in item["facts"]]), "alice")
    res = runner.invoke(cli, ["review", "report"], env=cli_env)
    assert res.exit_code == 1 and "alert" in res.output and "june" in res.output
    # a generous allowance: no alert
    assert runner.invoke(cli, ["review", "report", "--alert-points", "100"], env=cli_env).exit_code == 0


# --- hardening (#16) -------------------------------------------------------------------------


def test_nul_in_a_judgement_is_a_422_naming_the_field(client: TestClient, store) -> None:
    batch = new_batch(client)
    good = reviewdata.judgements(items(client, batch))
    url = f"/review/batches/{batch}/items"
    fix = json.loads(json.dumps(good["d3"]))
    fix["facts"][1]["object"] = "ga\x00to"
    error(client.put(f"{url}/d3", json=fix, headers=ALICE), 422, "facts.1.object: contains a NUL character")
    missing = good["d4"] | {"missing": [{"predicate": "WORKS_AS", "object": "profe\x00sora", "span": [4, 13]}]}
    error(client.put(f"{url}/d4", json=missing, headers=ALICE), 422, "missing.0.object: contains a NUL")
    evidence = good["d4"] | {"missing": [{"predicate": "WORKS_AS", "object": "x", "evidence": "\x00"}]}
    error(client.put(f"{url}/d4", json=evidence, headers=ALICE), 422, "missing.0.evidence")
    assert store.ro_query("MATCH (j:Judgement) RETURN count(j)").scalar() == 0


def test_api_refuses_a_seed_the_graph_cannot_store(client: TestClient, store) -> None:
    resp = client.post("/review/batches", json={"n": 2, "since": "2024-01-01", "seed": 2**63}, headers=ALICE)
    error(resp, 422, "seed")
    assert store.ro_query("MATCH (b:ReviewBatch) RETURN count(b)").scalar() == 0


def test_cli_refuses_bad_names_seeds_unknown_batches_and_missing_directories(store, settings, cli_env,
                                                                             tmp_path: Path) -> None:
    reviewdata.load(store, settings)
    sample = ["review", "sample", "--n", "2", "--since", "2024-01-01"]
    for bad in (["--name", "a|b"], ["--name", "a b"], ["--seed", str(2**63)]):
        res = runner.invoke(cli, [*sample, *bad], env=cli_env)
        assert res.exit_code == 2 and bad[0].lstrip("-") in res.output, res.output
    assert store.ro_query("MATCH (b:ReviewBatch) RETURN count(b)").scalar() == 0
    assert runner.invoke(cli, [*sample, "--name", "may-1.a"], env=cli_env).exit_code == 0
    res = runner.invoke(cli, ["review", "export", "--batch", "nope", "--out", str(tmp_path / "x.jsonl")], env=cli_env)
    assert res.exit_code == 1 and "no review batch 'nope'" in res.output and not (tmp_path / "x.jsonl").exists()
    missing = tmp_path / "nonexistent" / "dir" / "x.jsonl"
    res = runner.invoke(cli, ["review", "export", "--out", str(missing)], env=cli_env)
    assert res.exit_code == 1 and "does not exist" in " ".join(res.output.split()) and not missing.parent.exists()
    res = runner.invoke(cli, ["review", "export", "--batch", "may-1.a", "--json"], env=cli_env)  # default path
    assert res.exit_code == 0 and json.loads(res.stdout)["path"].startswith(str(settings.home))
