"""Audience export: formats, manifest, hashed ids, deltas, atomic writes, bad paths."""

from __future__ import annotations

import csv
import errno
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from engine import export as export_mod
from engine.cli import app
from engine.export import (
    ExportError,
    ExportWriteError,
    export_segment,
    hash_id,
    load_or_create_salt,
    resolve_salt,
    salt_id_of,
)
from engine.pipeline import apply_fact_lines
from engine.segment import SegmentNotFound, apply_definition, run_segment
from engine.segment import service as segment_service
from tests.factlines import fact

pytestmark = pytest.mark.integration
runner = CliRunner()
NOW = datetime(2024, 6, 1, tzinfo=UTC)
USERS = ("user-ana-7731", "user-bob-4410", "user-cy-9902")


@pytest.fixture
def segment(store, settings):
    apply_fact_lines(store, settings, [
        fact(doc_id=f"{USERS[0]}-doc1", user_id=USERS[0], predicate="LIVES_IN", object_qid="Q8686",
             object_types=["Q515"]),
        fact(doc_id=f"{USERS[1]}-doc1", user_id=USERS[1], predicate="LIVES_IN", object_qid="Q956",
             object_types=["Q515"]),
        fact(doc_id=f"{USERS[2]}-doc1", user_id=USERS[2], predicate="LIVES_IN", object_qid="Q64",
             object_types=["Q515"]),
    ])
    apply_definition(store, {"id": "cn", "name": "China", "where": {"lives_in": {"within": "Q148"}}})
    run_segment(store, "cn", now=NOW)
    return store


def test_csv_export_with_reasons_and_manifest(segment, tmp_path: Path) -> None:
    out = tmp_path / "cn.csv"
    manifest = export_segment(segment, "cn", fmt="csv", out=out)
    rows = list(csv.DictReader(out.open()))
    assert sorted(r["user_id"] for r in rows) == list(USERS[:2])
    assert all(r["status"] == "member" and r["segment_id"] == "cn" for r in rows)
    assert "⊂ People's Republic of China (Q148)" in rows[0]["reason"]
    saved = json.loads((tmp_path / "cn.csv.manifest.json").read_text())
    assert saved["rows"] == manifest.rows == 2
    assert saved["definition_hash"].startswith("sha256:")
    assert saved["hashed_ids"] is False and saved["engine_version"] and saved["exported_at"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_hashed_export_contains_no_raw_ids(segment, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"cn.{fmt}"
    manifest = export_segment(segment, "cn", fmt=fmt, out=out, hash_ids=True, salt="s3cret")
    assert manifest.hashed_ids and manifest.hash_algorithm == "hmac-sha256"
    blobs = [out.read_bytes(), (tmp_path / f"cn.{fmt}.manifest.json").read_bytes()]
    if fmt == "parquet":
        table = pq.read_table(out)
        blobs.append(json.dumps(table.to_pylist()).encode())
        ids = table.column("user_id").to_pylist()
    elif fmt == "jsonl":
        ids = [json.loads(line)["user_id"] for line in out.read_text().splitlines()]
    else:
        ids = [r["user_id"] for r in csv.DictReader(out.open())]
    for blob in blobs:
        for uid in USERS:
            assert uid.encode() not in blob
            assert uid.split("-")[1].encode() not in blob  # not even the name part
        assert b"s3cret" not in blob
    assert sorted(ids) == sorted(hash_id(u, "s3cret") for u in USERS[:2])


def test_hash_ids_needs_a_salt_or_a_home(segment, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PERSONA_EXPORT_SALT", "env-salt")  # read by the CLI/settings, never by export.py
    with pytest.raises(ExportError, match="salt"):
        export_segment(segment, "cn", fmt="csv", out=tmp_path / "x.csv", hash_ids=True)
    assert not (tmp_path / "x.csv").exists()
    manifest = export_segment(segment, "cn", fmt="csv", out=tmp_path / "x.csv", hash_ids=True, salt="given")
    ids = {r["user_id"] for r in csv.DictReader((tmp_path / "x.csv").open())}
    assert hash_id(USERS[0], "given") in ids and hash_id(USERS[0], "env-salt") not in ids
    assert (manifest.salt_source, manifest.salt_id) == ("given", salt_id_of("given"))


def test_home_salt_is_made_once_private_and_reused(segment, tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = export_segment(segment, "cn", fmt="csv", out=tmp_path / "a.csv", hash_ids=True, salt_home=home)
    salt_file = home / "export-salt"
    salt = salt_file.read_text().strip()
    assert salt_file.stat().st_mode & 0o777 == 0o600 and len(salt) == 64
    second = export_segment(segment, "cn", fmt="jsonl", out=tmp_path / "b.jsonl", hash_ids=True, salt_home=home)
    assert first.salt_id == second.salt_id == salt_id_of(salt) and first.salt_source == "home"
    a = {r["user_id"] for r in csv.DictReader((tmp_path / "a.csv").open())}
    b = {json.loads(line)["user_id"] for line in (tmp_path / "b.jsonl").read_text().splitlines()}
    assert a == b == {hash_id(u, salt) for u in USERS[:2]}  # stable across exports
    for name in ("a.csv", "a.csv.manifest.json", "b.jsonl", "b.jsonl.manifest.json"):
        blob = (tmp_path / name).read_bytes()
        assert salt.encode() not in blob and not any(u.encode() in blob for u in USERS)
    # an explicit salt overrides the file, which stays as it was
    given = export_segment(segment, "cn", fmt="csv", out=tmp_path / "c.csv", hash_ids=True, salt="x", salt_home=home)
    assert given.salt_id != first.salt_id and salt_file.read_text().strip() == salt
    assert load_or_create_salt(home) == (salt, first.salt_id)
    assert resolve_salt(home, None) == (salt, first.salt_id, "home")


def test_delta_export_since(segment, settings, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(segment_service, "wall_clock", lambda: "2030-01-01T00:00:00Z")
    apply_fact_lines(segment, settings, [
        fact(doc_id="mv1", user_id=USERS[0], ts="2024-02-01T00:00:00Z", predicate="LIVES_IN", object_qid="Q64",
             object_types=["Q515"]),
        fact(doc_id="mv2", user_id=USERS[2], ts="2024-02-01T00:00:00Z", predicate="LIVES_IN", object_qid="Q8686",
             object_types=["Q515"]),
    ])
    run_segment(segment, "cn", incremental=True, now=NOW)
    out = tmp_path / "delta.jsonl"
    manifest = export_segment(segment, "cn", fmt="jsonl", out=out, since="2029-12-31T00:00:00Z")
    rows = {r["user_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert {u: r["status"] for u, r in rows.items()} == {USERS[0]: "left", USERS[2]: "joined"}
    assert rows[USERS[0]]["left_at"] == "2030-01-01T00:00:00Z"
    assert (manifest.joined, manifest.left, manifest.since) == (1, 1, "2029-12-31T00:00:00Z")


def test_unwritable_paths_fail_clearly_and_write_nothing(segment, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        export_segment(segment, "cn", fmt="csv", out=tmp_path / "missing" / "x.csv")
    with pytest.raises(ExportError, match="is a directory"):
        export_segment(segment, "cn", fmt="csv", out=tmp_path)
    with pytest.raises(ExportError, match="unknown format"):
        export_segment(segment, "cn", fmt="xlsx", out=tmp_path / "x.xlsx")
    with pytest.raises(ExportError, match="ISO-8601"):
        export_segment(segment, "cn", fmt="csv", out=tmp_path / "x.csv", since="yesterday")
    with pytest.raises(SegmentNotFound):
        export_segment(segment, "nope", fmt="csv", out=tmp_path / "x.csv")
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_write_leaves_nothing_half_written(segment, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "cn.csv"
    out.write_text("previous export\n")

    def boom(self, rows):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(export_mod._Writer, "write", boom)
    with pytest.raises(ExportWriteError, match="Input/output error"):
        export_segment(segment, "cn", fmt="csv", out=out)
    assert out.read_text() == "previous export\n"  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["cn.csv"]


def test_cli_export(segment, tmp_path: Path, cli_env) -> None:
    out = tmp_path / "cn.parquet"
    env = {**cli_env, "PERSONA_EXPORT_SALT": "cli-salt"}
    result = runner.invoke(app, ["export", "cn", "--format", "parquet", "--out", str(out), "--hash-ids",
                                       "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 2
    bad = runner.invoke(app, ["export", "cn", "--out", str(tmp_path / "no" / "x.csv")], env=cli_env)
    assert bad.exit_code == 1
    assert "does not exist" in bad.output


def test_odd_ids_and_reasons_survive_the_packed_rows(store, settings, tmp_path: Path) -> None:
    odd = ["a|b|3|x", "名字😀|", 'space, "quote" and,comma']
    apply_fact_lines(store, settings, [
        fact(doc_id=f"doc|{i}", user_id=u, predicate="LIVES_IN", object_qid="Q8686", object_types=["Q515"])
        for i, u in enumerate(odd)
    ])
    apply_definition(store, {"id": "cn", "where": {"lives_in": {"within": "Q148"}}})
    run_segment(store, "cn", now=NOW)
    out = tmp_path / "odd.jsonl"
    export_segment(store, "cn", fmt="jsonl", out=out)
    rows = {r["user_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == set(odd)
    assert rows[odd[0]]["reason"].endswith("[docs doc|0]")
    assert rows[odd[0]]["confidence"] == pytest.approx(0.8)


class PagedOnlyStore:
    """A store without ro_stream (like a foreign GraphStore): the export pages by user id instead."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.pages = 0

    def query(self, cypher, params=None):
        return self.inner.query(cypher, params)

    def ro_query(self, cypher, params=None, timeout_ms=None):
        if "$after" in cypher:
            self.pages += 1
        return self.inner.ro_query(cypher, params, timeout_ms)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_paged_fallback_writes_what_the_stream_writes(segment, settings, tmp_path: Path, monkeypatch, fmt) -> None:
    apply_fact_lines(segment, settings, [
        fact(doc_id=f"more-{i}", user_id=f"user-{i:02d}", predicate="LIVES_IN", object_qid="Q8686",
             object_types=["Q515"]) for i in range(7)
    ])
    run_segment(segment, "cn", now=NOW)
    monkeypatch.setattr(export_mod, "PAGE", 2)
    paged = PagedOnlyStore(segment)
    seen: list[tuple[int, int | None]] = []
    for since in (None, "2000-01-01T00:00:00Z"):
        streamed = export_segment(segment, "cn", fmt=fmt, out=tmp_path / f"s.{fmt}", since=since, hash_ids=True,
                                  salt="x")
        fallback = export_segment(paged, "cn", fmt=fmt, out=tmp_path / f"p.{fmt}", since=since, hash_ids=True,
                                  salt="x", progress=lambda done, total: seen.append((done, total)))
        assert (fallback.rows, fallback.members, fallback.joined) == (streamed.rows, streamed.members, streamed.joined)
        lines = [sorted((tmp_path / f"{name}.{fmt}").read_text().splitlines()) for name in ("s", "p")]
        assert lines[0] == lines[1] and len(lines[0]) >= 9
    assert paged.pages >= 2 * 5  # 9 rows in pages of 2, twice
    assert seen[:2] == [(2, 9), (4, 9)]
