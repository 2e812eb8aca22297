"""`persona kb harvest` against a REAL SPARQL server: Oxigraph (PyPI `oxigraph`, which ships the
`oxigraph` server binary) loaded with a small Wikidata-shaped N-Triples file, bound to loopback.
Then `persona kb build --no-shared --ntriples` turns the harvest into a KB the linker can use.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import app
from linkers.kb import load_kb
from linkers.link import context_edges, link

WD = "http://www.wikidata.org/entity/"
WDT = "http://www.wikidata.org/prop/direct/"
LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
ALT = "http://www.w3.org/2004/02/skos/core#altLabel"
DESC = "http://schema.org/description"

TRIPLES = [
    ("Q349", LABEL, '"sport"@en'),
    ("Q349", LABEL, '"体育"@zh-hans'),
    ("Q349", LABEL, '"deporte"@es'),
    ("Q216048", LABEL, '"team sport"@en'),
    ("Q216048", WDT + "P279", "Q349"),
    ("Q5372", LABEL, '"basketball"@en'),
    ("Q5372", LABEL, '"籃球"@zh-hant'),
    ("Q5372", LABEL, '"baloncesto"@es'),
    ("Q5372", ALT, '"hoops"@en'),
    ("Q5372", DESC, '"team sport played on a court"@en'),
    ("Q5372", WDT + "P279", "Q216048"),
    ("Q847", LABEL, '"tennis"@en'),
    ("Q847", LABEL, '"网球"@zh'),
    ("Q847", WDT + "P31", "Q216048"),
    ("Q1420", LABEL, '"car"@en'),
    ("Q1420", WDT + "P279", "Q42889"),  # outside the sport tree
    ("Q42889", LABEL, '"vehicle"@en'),
]


def _term(value: str) -> str:
    if value.startswith('"'):
        return value
    if value.startswith("http"):
        return f"<{value}>"
    return f"<{WD}{value}>"


def _oxigraph() -> str | None:
    local = Path(sys.executable).parent / "oxigraph"
    return str(local) if local.exists() else shutil.which("oxigraph")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sparql_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = _oxigraph()
    if binary is None:
        pytest.skip("the `oxigraph` server is not installed (pip install oxigraph==0.5.13)")
    work = tmp_path_factory.mktemp("oxigraph")
    data = work / "data.nt"
    data.write_text("".join(f"{_term(s)} {_term(p)} {_term(o)} .\n" for s, p, o in TRIPLES), encoding="utf-8")
    store = work / "store"
    subprocess.run(
        [binary, "load", "--location", str(store), "--file", str(data)],
        check=True,
        timeout=60,
        capture_output=True,
    )
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "serve-read-only", "--location", str(store), "--bind", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/query"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}?query=ASK%7B%7D", timeout=2).read()
                break
            except OSError as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read() if proc.stderr else ""
                    raise RuntimeError(f"oxigraph did not start: {err}") from exc
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_harvest_pulls_class_tree_and_builds_kb(sparql_endpoint: str, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "sport.nt"
    res = runner.invoke(
        app, ["kb", "harvest", "--endpoint", sparql_endpoint, "--root", "Q349", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    text = out.read_text(encoding="utf-8")
    assert f"<{WD}Q5372>" in text and "籃球" in text and "hoops" in text
    assert f"<{WD}Q847> <{WDT}P31> <{WD}Q216048>" in text
    assert f"<{WD}Q1420>" not in text  # not under sport

    kb_file = tmp_path / "kb.bin"
    res = runner.invoke(
        app, ["kb", "build", "--no-shared", "--no-curated", "--ntriples", str(out), "--out", str(kb_file)]
    )
    assert res.exit_code == 0, res.output
    kb = load_kb(kb_file)
    assert link(kb, "篮球", lang="zh").qid == "Q5372"  # Simplified mention, Traditional label
    assert link(kb, "Hoops").qid == "Q5372"
    assert link(kb, "tennis").label_zh == "网球"
    edges = {(e.child, e.rel, e.parent) for e in context_edges(kb, ["Q847"])}
    assert ("Q847", "INSTANCE_OF", "Q216048") in edges and ("Q216048", "SUBCLASS_OF", "Q349") in edges


def test_harvest_reports_unreachable_endpoint(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there
    res = CliRunner().invoke(
        app,
        [
            "kb",
            "harvest",
            "--endpoint",
            f"http://127.0.0.1:{port}/query",
            "--root",
            "Q349",
            "--timeout",
            "5",
            "--out",
            str(tmp_path / "x.nt"),
        ],
    )
    assert res.exit_code == 2
    assert "SPARQL query failed" in res.output


def test_harvest_rejects_bad_root(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["kb", "harvest", "--endpoint", "http://127.0.0.1:9/query", "--root", "sport"])
    assert res.exit_code == 2 and "QIDs" in res.output
