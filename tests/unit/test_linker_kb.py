"""KB file handling, the Wikidata JSON dump reader and the builder's error messages."""

from __future__ import annotations

import bz2
import gzip
import json
import pickle
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import linkers
from engine.cli import app
from linkers.build import BuildOptions, MissingDataError, build_kb
from linkers.draft import KBDraft
from linkers.dump import read_json_dump
from linkers.kb import KBError, load_kb, reset_cache
from linkers.link import link

KB_ENV = "PERSONA_KB_PATH"


def test_missing_kb_file_says_how_to_rebuild(tmp_path: Path) -> None:
    with pytest.raises(KBError, match="persona kb build"):
        load_kb(tmp_path / "nope.bin")


@pytest.mark.parametrize(
    "payload",
    [
        b"garbage",
        b"PKB1" + b"\x00" * 50,
        b"PKB1" + zlib.compress(b"not a pickle"),
        b"PKB1" + zlib.compress(pickle.dumps({"format": 999})),
    ],
)
def test_corrupt_kb_file_says_how_to_rebuild(tmp_path: Path, payload: bytes) -> None:
    bad = tmp_path / "kb.bin"
    bad.write_bytes(payload)
    with pytest.raises(KBError, match="persona kb build"):
        load_kb(bad)


def test_kb_file_cannot_smuggle_code(tmp_path: Path) -> None:
    evil = tmp_path / "kb.bin"
    evil.write_bytes(b"PKB1" + zlib.compress(pickle.dumps({"format": 1, "x": Path("/")})))
    with pytest.raises(KBError, match="not allowed"):
        load_kb(evil)


def test_public_api_reports_corrupt_kb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "kb.bin"
    bad.write_bytes(b"junk")
    monkeypatch.setenv(KB_ENV, str(bad))
    reset_cache()
    try:
        res = CliRunner().invoke(app, ["kb", "info"])  # the CLI reads PERSONA_KB_PATH through Settings
        assert res.exit_code == 2 and "persona kb build" in res.output
        linkers.use_kb(bad)
        with pytest.raises(KBError, match="persona kb build"):
            linkers.link_object("Berlin")
    finally:
        monkeypatch.delenv(KB_ENV)
        linkers.use_kb(None)
        reset_cache()


def test_builder_says_when_shared_data_is_missing(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError, match="--data-dir"):
        build_kb(BuildOptions(data_dir=tmp_path / "absent", out=tmp_path / "kb.bin"))
    res = CliRunner().invoke(
        app, ["kb", "build", "--data-dir", str(tmp_path / "absent"), "--out", str(tmp_path / "k.bin")]
    )
    assert res.exit_code == 2 and "PERSONA_WIKIDATA_DIR" in res.output


def _item(
    qid: str,
    en: str,
    *,
    p31: str | None = None,
    p279: str | None = None,
    zh: str | None = None,
    es: str | None = None,
    aliases: tuple[str, ...] = (),
    p131: str | None = None,
) -> dict:
    def claim(pid: str, target: str) -> list[dict]:
        return [
            {
                "mainsnak": {
                    "snaktype": "value",
                    "property": pid,
                    "datavalue": {
                        "value": {"entity-type": "item", "id": target, "numeric-id": int(target[1:])},
                        "type": "wikibase-entityid",
                    },
                },
                "type": "statement",
                "rank": "normal",
            }
        ]

    labels = {"en": {"language": "en", "value": en}, "de": {"language": "de", "value": en + "-de"}}
    if zh:
        labels["zh-hant"] = {"language": "zh-hant", "value": zh}
    if es:
        labels["es"] = {"language": "es", "value": es}
    claims: dict[str, list] = {}
    for pid, target in (("P31", p31), ("P279", p279), ("P131", p131)):
        if target:
            claims[pid] = claim(pid, target)
    return {
        "type": "item",
        "id": qid,
        "labels": labels,
        "aliases": {"en": [{"language": "en", "value": a} for a in aliases]},
        "descriptions": {"en": {"language": "en", "value": f"{en} (test)"}},
        "claims": claims,
        "sitelinks": {"enwiki": {"title": en}},
    }


def _write_dump(path: Path, items: list[dict]) -> None:
    # The official layout: a JSON array, one entity per line, lines ending in commas.
    body = "[\n" + ",\n".join(json.dumps(i, ensure_ascii=False) for i in items) + "\n]\n"
    opener = gzip.open if path.suffix == ".gz" else bz2.open
    with opener(path, "wt", encoding="utf-8") as fh:  # type: ignore[operator]
        fh.write(body)


DUMP = [
    _item("Q349", "sport", es="deporte"),
    _item("Q216048", "team sport", p279="Q349"),
    _item("Q5372", "basketball", p279="Q216048", zh="籃球", es="baloncesto", aliases=("hoops",)),
    _item("Q847", "tennis", p31="Q216048"),
    _item("Q1420", "car", p279="Q42889"),
    _item("Q42889", "vehicle"),
    _item("Q64", "Berlin", p31="Q515", p131="Q183"),
]


@pytest.mark.parametrize("suffix", [".json.gz", ".json.bz2"])
def test_dump_reader_filters_to_root_descendants(tmp_path: Path, suffix: str) -> None:
    dump = tmp_path / f"latest-all{suffix}"
    _write_dump(dump, DUMP)
    draft = KBDraft()
    kept = read_json_dump(draft, dump, roots=["Q349"])
    assert kept == 4  # sport, team sport, basketball, tennis
    assert {"Q5372", "Q847", "Q216048", "Q349"} <= set(draft.entities)
    assert "Q1420" not in draft.entities or not draft.entities["Q1420"].aliases
    assert draft.entities["Q5372"].isa == {"Q216048": 0}
    assert "Q5372" not in [q for q, d in draft.entities.items() if d.aliases.get("und")]  # German dropped


def test_build_from_dump_only(tmp_path: Path) -> None:
    dump = tmp_path / "latest-all.json.gz"
    _write_dump(dump, DUMP)
    out = tmp_path / "kb.bin"
    report = build_kb(BuildOptions(use_shared=False, use_curated=False, dumps=[dump], out=out))
    assert report.entities >= 7
    kb = load_kb(out)
    assert link(kb, "篮球", lang="zh").qid == "Q5372"
    assert link(kb, "Hoops").qid == "Q5372"
    assert link(kb, "Berlin").label_en == "Berlin"
    assert kb.reaches(kb.idx("Q847"), ["Q349"])
