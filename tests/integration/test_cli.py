"""The `persona` CLI end to end: bad input, read-only cypher, show, conflicts, forget, db."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import app

pytestmark = pytest.mark.integration
runner = CliRunner()


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def good(**kw: object) -> str:
    base = {"doc_id": "d1", "user_id": "alice", "ts": "2024-03-01T10:00:00Z", "predicate": "LIKES",
            "object": "tea", "confidence": 0.9}
    base.update(kw)
    return json.dumps(base, ensure_ascii=False)


def test_bad_lines_are_reported_and_the_rest_is_ingested(tmp_path: Path, cli_env) -> None:
    file = write_lines(tmp_path / "facts.jsonl", [
        good(),
        '{"doc_id": "d2", "user_id": "alice", broken',
        good(doc_id="d3", predicate="LOVES_DEEPLY"),
        good(doc_id="d4", user_id="   "),
        good(doc_id="d5", object="x" * 600),
        good(doc_id="d6", ts="yesterday-ish"),
        good(doc_id="d7", user_id="bob", predicate="LIVES_IN", object="Berlin", object_qid="Q64",
             object_types=["Q515"]),
        good(doc_id="d8", predicate="AGE_BAND", value="ancient"),
        good(doc_id="d9", object_qid="64"),
    ])
    result = runner.invoke(app, ["ingest-facts", str(file), "--json"], env=cli_env)
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert summary["applied"] == 2 and summary["failed"] == 7
    errors = "\n".join(f"line {e['line']}: {e['field']}: {e['message']}" for e in summary["errors"])
    for expected in (
        "line 2: record: not valid JSON",
        "line 3: predicate: unknown predicate 'LOVES_DEEPLY'",
        "line 4: user_id: must not be empty",
        "line 5: object: String should have at most 500 characters",
        "line 6: ts:",
        "line 8: value:",
        "line 9: object_qid:",
    ):
        assert expected in errors, (expected, errors)

    show = runner.invoke(app, ["show", "bob", "--json"], env=cli_env)
    assert show.exit_code == 0, show.output
    facts = json.loads(show.stdout)["facts"]
    assert [(f["predicate"], f["key"]) for f in facts] == [("LIVES_IN", "Q64")]


def test_all_good_file_exits_zero_and_show_conflicts(tmp_path: Path, cli_env) -> None:
    file = write_lines(tmp_path / "facts.jsonl", [
        good(doc_id="d1", ts="2020-01-01T00:00:00Z", predicate="LIVES_IN", object="Beijing",
             object_qid="Q956", object_types=["Q515"]),
        good(doc_id="d2", ts="2024-01-01T00:00:00Z", predicate="LIVES_IN", object="Berlin",
             object_qid="Q64", object_types=["Q515"]),
    ])
    result = runner.invoke(app, ["ingest-facts", str(file)], env=cli_env)
    assert result.exit_code == 0, result.output
    out = runner.invoke(app, ["conflicts", "alice", "--json"], env=cli_env)
    (conflict,) = json.loads(out.stdout)
    assert conflict["rule"] == "functional"
    table = runner.invoke(app, ["show", "alice"], env=cli_env)
    assert "superseded" in table.stdout and "Q64" in table.stdout
    missing = runner.invoke(app, ["show", "nobody"], env=cli_env)
    assert missing.exit_code == 1 and "no user" in missing.output


def test_cypher_is_read_only_unless_write(tmp_path: Path, cli_env) -> None:
    refused = runner.invoke(app, ["cypher", "CREATE (:User {id: 'x'})"], env=cli_env)
    assert refused.exit_code == 1
    assert "read-only" in refused.output
    wrote = runner.invoke(app, ["cypher", "--write", "CREATE (:User {id: $id})", "-p", "id=x"], env=cli_env)
    assert wrote.exit_code == 0, wrote.output
    read = runner.invoke(
        app, ["cypher", "MATCH (u:User {id: $id}) RETURN u.id AS id", "-p", "id=x", "--json"], env=cli_env
    )
    assert json.loads(read.stdout) == {"columns": ["id"], "rows": [["x"]]}


def test_forget_via_cli(tmp_path: Path, cli_env) -> None:
    runner.invoke(app, ["ingest-facts", str(write_lines(tmp_path / "f.jsonl", [good()]))], env=cli_env)
    result = runner.invoke(app, ["forget", "alice", "--yes"], env=cli_env)
    assert result.exit_code == 0, result.output
    again = runner.invoke(app, ["forget", "alice", "--yes"], env=cli_env)
    assert again.exit_code == 1


def persona(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "--home", str(home), *args],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"},
    )


def test_db_start_reuse_status_stop(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = persona(home, "db", "start")
    assert first.returncode == 0, first.stderr
    second = persona(home, "db", "start")
    assert first.stdout.split(",")[0] == second.stdout.split(",")[0]  # same pid: reused
    status = json.loads(persona(home, "db", "status", "--json").stdout)
    assert status["running"] and status["port"]
    assert persona(home, "db", "stop").stdout.strip() == "stopped"
    assert json.loads(persona(home, "db", "status", "--json").stdout)["running"] is False
    assert persona(home, "db", "stop").stdout.strip() == "not running"


def test_db_start_fails_clearly_when_home_is_unusable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = persona(blocker, "db", "start")
    assert result.returncode != 0
    assert "error" in (result.stderr + result.stdout).lower()


def test_control_character_ids_are_refused_not_lost(tmp_path: Path, cli_env, store) -> None:
    file = write_lines(tmp_path / "facts.jsonl", [good(user_id="al\u0001ice"), good(doc_id="d2", user_id="bob")])
    result = runner.invoke(app, ["ingest-facts", str(file), "--batch-size", "1", "--json"], env=cli_env)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert [(e["line"], e["field"]) for e in report["errors"]] == [(1, "user_id")]
    assert (report["users"], report["documents"], report["applied"]) == (1, 1, 1)
    assert store.ro_query("MATCH (u:User) RETURN collect(u.id)").scalar() == ["bob"]
