"""The column-wise export writers produce exactly what csv.writer / json.dumps wrote row by row."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import random

import pyarrow.parquet as pq
import pytest

from engine.export import COLUMNS, _frame, _Writer, hash_id, id_hasher

ALPHABET = ["a", "Z", "0", ",", '"', "\r", "\n", "\t", "\\", "/", "é", "名", "😀", " ", "|", "\x00", "\x1f", "\x7f",
            "\u2028", "'", "{", "}", ":"]
CONFIDENCES = [0.9, 1.0, 0.0, 0.1 + 0.2, 1e-7, 0.873, "0.5", "1e-07", "0.123456789012346", 1, None]


def odd_text(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 8)))


def odd_rows(rng: random.Random, n: int) -> list[list[object]]:
    """Store rows [user_id, reason, confidence, since, left_at] as the export query returns them.

    Half the batches carry confidences as text only (FalkorDB's bulk path), half mixed types."""
    confidences = CONFIDENCES if rng.random() < 0.5 else [c for c in CONFIDENCES if isinstance(c, str)]
    rows = []
    for _ in range(n):
        rows.append([
            odd_text(rng) or "u",
            odd_text(rng),
            rng.choice(confidences),
            rng.choice([None, "", "2024-01-01T00:00:00Z", odd_text(rng)]),
            rng.choice([None, "", "2024-03-01T00:00:00Z", "2030-01-01T00:00:00Z"]),
        ])
    return rows


def reference_rows(rows, segment_id: str, since: str | None) -> list[tuple[object, ...]]:
    """What the row-by-row export made of the same rows."""
    out = []
    for uid, reason, confidence, joined, left_at in rows:
        left_at = left_at or None
        status = "member" if since is None else ("left" if left_at is not None and left_at >= since else "joined")
        out.append((uid, segment_id, reason or "", float(confidence or 0.0), joined or None, status, left_at))
    return out


def reference_bytes(fmt: str, rows: list[tuple[object, ...]]) -> bytes:
    if fmt == "csv":
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
        return text.getvalue().encode()
    return "".join(json.dumps(dict(zip(COLUMNS, r, strict=True)), ensure_ascii=False) + "\n" for r in rows).encode()


def written(fmt: str, batches, segment_id: str, since: str | None) -> tuple[bytes, dict[str, int]]:
    counts = {"member": 0, "joined": 0, "left": 0}
    fh = io.BytesIO()
    writer = _Writer(fmt, fh, segment_id)
    for rows in batches:
        writer.write(_frame(rows, since, None, counts))
    writer.close()
    return fh.getvalue(), counts


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("since", [None, "2025-01-01T00:00:00Z"])
def test_text_formats_match_the_stdlib_writers_on_hostile_values(fmt: str, since: str | None) -> None:
    rng = random.Random(7)
    for trial in range(60):
        batches = [odd_rows(rng, rng.randint(0, 25)) for _ in range(rng.randint(1, 3))]
        segment_id = rng.choice(["cn", 'seg,"1\n', "名"])
        data, counts = written(fmt, batches, segment_id, since)
        expected = reference_rows([r for b in batches for r in b], segment_id, since)
        assert data == reference_bytes(fmt, expected), f"trial {trial}"
        statuses = [r[5] for r in expected]
        assert counts == {s: statuses.count(s) for s in ("member", "joined", "left")}


def test_parquet_holds_the_same_rows(tmp_path) -> None:
    rows = odd_rows(random.Random(3), 40)
    path = tmp_path / "x.parquet"
    with path.open("wb") as fh:
        writer = _Writer("parquet", fh, "cn")
        writer.write(_frame(rows[:15], None, None, {"member": 0}))
        writer.write(_frame(rows[15:], None, None, {"member": 0}))
        writer.close()
    table = pq.read_table(path)
    assert table.column_names == list(COLUMNS)
    assert [tuple(r.values()) for r in table.to_pylist()] == reference_rows(rows, "cn", None)


def test_empty_exports(tmp_path) -> None:
    assert written("csv", [], "cn", None)[0] == reference_bytes("csv", [])
    assert written("jsonl", [[]], "cn", None)[0] == b""
    path = tmp_path / "x.parquet"
    with path.open("wb") as fh:
        writer = _Writer("parquet", fh, "cn")
        writer.close()
    assert pq.read_table(path).num_rows == 0


@pytest.mark.parametrize("salt", ["s3cret", "", "ß" * 40, "k" * 64, "k" * 65, "x" * 200])
def test_id_hasher_is_hmac_sha256(salt: str) -> None:
    hashed = id_hasher(salt)
    for uid in ["u1", "", "名字😀|", "a" * 300]:
        assert hashed(uid) == hash_id(uid, salt) == hmac.new(salt.encode(), uid.encode(), hashlib.sha256).hexdigest()


def test_hashing_replaces_raw_ids_inside_reasons() -> None:
    counts = {"member": 0}
    frame = _frame([["ana-7", "LIVES_IN Shanghai [docs ana-7-d1]", "0.8", None, None]], None, id_hasher("s"), counts)
    hashed = hash_id("ana-7", "s")
    assert frame.user_id.to_pylist() == [hashed]
    assert frame.reason.to_pylist() == [f"LIVES_IN Shanghai [docs {hashed}-d1]"]
