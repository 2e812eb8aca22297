"""`persona kb build`: read the inputs, write the compact KB file (linkers/data/kb.bin by default)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from linkers import sources
from linkers.draft import KBDraft, finalise
from linkers.dump import read_json_dump, read_ntriples
from linkers.kb import DEFAULT_KB_PATH, save_columns

REPO_ROOT = Path(__file__).resolve().parent.parent


class MissingDataError(FileNotFoundError):
    """The shared Wikidata inputs are not where the builder looks."""


def default_data_dir() -> Path:
    """../shared/data/wikidata relative to the repository (the engine passes its setting instead)."""
    return REPO_ROOT.parent / "shared" / "data" / "wikidata"


class BuildOptions(BaseModel):
    data_dir: Path | None = None  # None = default_data_dir()
    use_shared: bool = True
    dumps: list[Path] = Field(default_factory=list)
    ntriples: list[Path] = Field(default_factory=list)
    roots: list[str] = Field(default_factory=list)
    use_curated: bool = True
    out: Path = DEFAULT_KB_PATH


class BuildReport(BaseModel):
    out: Path
    size_bytes: int
    entities: int
    alias_keys: int
    seconds: float
    inputs: list[dict[str, object]]


def check_data_dir(data_dir: Path) -> None:
    missing = [name for name, _, _ in sources.SHARED_INPUTS if not (data_dir / name).exists()]
    if not data_dir.is_dir() or len(missing) == len(sources.SHARED_INPUTS):
        raise MissingDataError(
            f"Wikidata input directory {data_dir} not found (or empty). The KB builder reads the files "
            "listed "
            f"in shared/data/README.md from there. Pass --data-dir DIR or set PERSONA_WIKIDATA_DIR=DIR; "
            "or build only from a Wikidata dump / N-Triples with --no-shared --dump FILE / --ntriples FILE."
        )
    if missing:
        raise MissingDataError(f"{data_dir} lacks {', '.join(missing)}; see shared/data/README.md")


def build_kb(opts: BuildOptions, step: Callable[[str], None] = print) -> BuildReport:
    started = time.perf_counter()
    draft = KBDraft()
    inputs: list[dict[str, object]] = []

    def run(name: str, licence: str, fn: Callable[[], int]) -> None:
        t = time.perf_counter()
        rows = fn()
        inputs.append({"input": name, "rows": rows, "licence": licence})
        step(f"{name}: {rows:,} rows in {time.perf_counter() - t:.1f}s")

    if opts.use_shared:
        data_dir = opts.data_dir or default_data_dir()
        check_data_dir(data_dir)
        for name, reader, licence in sources.SHARED_INPUTS:
            run(name, licence, lambda r=reader, n=name: r(draft, data_dir / n))
    for dump in opts.dumps:
        run(dump.name, "Wikidata CC0", lambda d=dump: read_json_dump(draft, d, opts.roots))
    for nt in opts.ntriples:
        run(nt.name, "Wikidata CC0", lambda p=nt: read_ntriples(draft, p))
    if opts.use_curated:
        run("linkers/curated", "Wikidata CC0 (hand-curated)", lambda: sources.read_curated(draft))
    if not draft.entities:
        raise MissingDataError("no input produced any entity; nothing to build")

    meta = {
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "inputs": inputs,
        "roots": opts.roots,
    }
    cols = finalise(draft, meta, step)
    size = save_columns(cols, opts.out)
    return BuildReport(
        out=opts.out,
        size_bytes=size,
        entities=len(cols["qids"]),  # type: ignore[arg-type]
        alias_keys=len(cols["alias_keys"]),  # type: ignore[arg-type]
        seconds=round(time.perf_counter() - started, 1),
        inputs=inputs,
    )


def build_default(out: Path | None = None, extra: Sequence[Path] = ()) -> BuildReport:
    """Build the shipped KB from the shared data (what `persona kb build` does with no options)."""
    return build_kb(BuildOptions(out=out or DEFAULT_KB_PATH, ntriples=list(extra)))
