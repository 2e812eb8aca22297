"""`persona train facts|sentiment`: fine-tune the encoder's task adaptation layers on ../shared/data
and write the task weights (a few MB) plus a model card. Seeded; reads train and dev splits only."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from engine.cli._util import EXIT_USAGE, console, fail, progress_bar, settings_of

train_app = typer.Typer(help="Fine-tune the encoder tier (LoRA adapters + heads).", no_args_is_help=True)

OUT_HELP = "Where to write <task>.safetensors / .json / .md (default: the weights shipped in the package)"


def _prepare(ctx: typer.Context, data_dir: Path | None, top_layers: int, rank: int, seed: int):
    import torch

    from engine.extract.encoder import AdapterShape, load_base
    from engine.extract.encoder.base import record_of
    from engine.train.tasks import new_model

    settings = settings_of(ctx)
    data = data_dir or settings.data.root
    if not data.is_dir():
        fail(f"training data not found at {data}: it lives in ../shared/data (see its README); pass --data-dir",
             EXIT_USAGE)
    torch.manual_seed(seed)
    base = load_base(settings.model_cache, shared=False)  # training wraps (changes) the model
    record = record_of(settings.model_cache)
    sha = record.outputs.get("model.safetensors") if record else None
    return data, base, sha, new_model(base.model, AdapterShape(top_layers=top_layers, rank=rank))


def _report(report, out: Path) -> None:
    from engine.train.card import write_card

    card = write_card(out, report)
    table = Table(title=f"train {report.task}")
    for col in ("epoch", "train loss", "dev", "seconds"):
        table.add_column(col)
    for e in report.result.history:
        table.add_row(str(e.epoch), f"{e.train_loss:.4f}", json.dumps(e.dev), str(e.seconds))
    console.print(table)
    console.print(f"best epoch {report.result.best_epoch}; dev after calibration: {json.dumps(report.dev)}")
    console.print(f"wrote {out / (report.task + '.safetensors')} and the model card {card}")


def _resumed_from(folder: Path) -> str:
    """What the weights a run starts from were trained on, from their metadata, for the card."""
    from engine.extract.encoder.weights import load_task

    meta = load_task(folder, "facts")[0]
    return f"{folder.name}/facts (dev {json.dumps(meta.metrics.get('dev', {}))})"


def _checkpoint(report, out: Path, resumed_from: str | None = None) -> None:
    from engine.train.card import write_card

    if resumed_from:
        report.extra["resumed_from"] = resumed_from
    write_card(out, report)
    console.print(f"epoch {report.result.best_epoch}: best so far, saved to {out}; dev {json.dumps(report.dev)}")


def _bar_progress(bar, task_id):
    def progress(done: int, total: int, what: str) -> None:
        bar.update(task_id, completed=done, total=total, description=what)

    return progress


@train_app.command("facts")
def facts(
    ctx: typer.Context,
    data_dir: Path | None = typer.Option(None, "--data-dir", help="../shared/data (PERSONA_DATA_DIR)"),
    out: Path | None = typer.Option(None, "--out", help=OUT_HELP),
    epochs: int = typer.Option(4, min=1), batch_size: int = typer.Option(32, min=1),
    lr: float = typer.Option(5e-4), seed: int = typer.Option(13),
    top_layers: int = typer.Option(4, min=1, max=12, help="Encoder layers adapted (the rest is a shared trunk)"),
    rank: int = typer.Option(8, min=1, help="LoRA rank"),
    templates: int = typer.Option(60, min=0, help="Template sentences per template over KB vocabulary (0: none)"),
    max_train: int | None = typer.Option(None, help="Use at most this many PersonaExt training sentences (seeded)"),
    compounds: int = typer.Option(1500, min=0, help="Two-sentence English compounds (a third as many Chinese)"),
    zh_repeat: int = typer.Option(1, min=1, help="Times the (few) Chinese training sentences are repeated per epoch"),
    calibrate_only: bool = typer.Option(
        False, "--calibrate-only", help="Keep the weights in --out; refit calibration and thresholds on dev"),
    resume: Path | None = typer.Option(None, "--resume", help="Start from the facts weights in this folder"),
) -> None:
    """Facts as token tagging on the train splits of PersonaExt (+ checked silver labels), XPersona zh and
    KvPI zh (+ templates, compounds); threshold and calibration on the dev splits."""
    import linkers
    from engine.extract.encoder.weights import PACKAGED, load_task
    from engine.train.loop import TrainConfig
    from engine.train.synthetic import template_examples
    from engine.train.tasks import recalibrate_facts, resume_facts, train_facts

    if calibrate_only or resume:
        shape = load_task(resume or out or PACKAGED, "facts")[0].shape
        top_layers, rank = shape["top_layers"], shape["rank"]
    data, base, sha, model = _prepare(ctx, data_dir, top_layers, rank, seed)
    if calibrate_only:
        dev = recalibrate_facts(model, base.tokenizer, data, out or PACKAGED)
        console.print(f"recalibrated on dev: {json.dumps(dev)}")
        return
    origin = _resumed_from(resume) if resume else None
    if resume:
        resume_facts(model, load_task(resume, "facts")[1])
    extra = template_examples(linkers.get_kb(), per_template=templates, seed=seed) if templates else []
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    target = out or PACKAGED
    with progress_bar() as bar:
        task_id = bar.add_task("training facts", total=None)
        report = train_facts(model, base.tokenizer, data, target, config, extra_examples=extra, max_train=max_train,
                             compounds=compounds, zh_repeat=zh_repeat, progress=_bar_progress(bar, task_id),
                             base_sha256=sha, checkpoint=lambda r: _checkpoint(r, target, origin))
    if origin:
        report.extra["resumed_from"] = origin
    _report(report, target)


@train_app.command("sentiment")
def sentiment(
    ctx: typer.Context,
    data_dir: Path | None = typer.Option(None, "--data-dir", help="../shared/data (PERSONA_DATA_DIR)"),
    out: Path | None = typer.Option(None, "--out", help=OUT_HELP),
    epochs: int = typer.Option(3, min=1), batch_size: int = typer.Option(32, min=1),
    lr: float = typer.Option(5e-4), seed: int = typer.Option(13),
    top_layers: int = typer.Option(4, min=1, max=12), rank: int = typer.Option(8, min=1),
    per_language: int = typer.Option(6000, min=10, help="Training rows per language (balanced)"),
    langs: str = typer.Option("zh,en,es", help="Comma-separated languages"),
) -> None:
    """Document sentiment on the zh / en / es train splits, temperature calibration on dev."""
    from engine.extract.encoder.weights import PACKAGED
    from engine.train.loop import TrainConfig
    from engine.train.tasks import train_sentiment

    data, base, sha, model = _prepare(ctx, data_dir, top_layers, rank, seed)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    target = out or PACKAGED
    with progress_bar() as bar:
        task_id = bar.add_task("training sentiment", total=None)
        report = train_sentiment(model, base.tokenizer, data, target, config,
                                 langs=[x.strip() for x in langs.split(",") if x.strip()],
                                 per_language=per_language, progress=_bar_progress(bar, task_id),
                                 base_sha256=sha)
    _report(report, target)


@train_app.command("project-xpersona")
def project_xpersona(
    ctx: typer.Context,
    xpersona: Path = typer.Argument(..., help="HLTCHKUST/Xpersona's dataset/ folder (En_persona_test.json, "
                                              "Zh_persona_split_{test,valid}_human_annotated.json)"),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="../shared/data (PERSONA_DATA_DIR)"),
    out: Path | None = typer.Option(None, "--out", help="Default: engine/corpora/data/xpersona_zh.jsonl"),
) -> None:
    """Project English fact labels (PersonaExt, else the English tagger) onto XPersona's Chinese sentences."""
    from engine.corpora.xpersona import PROJECTED, XpersonaError, read_pairs
    from engine.extract.encoder import load_base, load_encoder
    from engine.train.project import project_pairs

    settings = settings_of(ctx)
    data = data_dir or settings.data.root
    try:
        pairs = read_pairs(xpersona)
    except (FileNotFoundError, XpersonaError) as exc:
        fail(str(exc), EXIT_USAGE)
    rows = project_pairs(pairs, data, load_base(settings.model_cache), load_encoder(settings.model_cache),
                         progress=console.print)
    target = out or PROJECTED
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(r.model_dump_json() + "\n" for r in rows), encoding="utf-8")
    console.print(f"wrote {len(rows)} rows to {target}")


@train_app.command("silver")
def silver(
    ctx: typer.Context,
    data_dir: Path | None = typer.Option(None, "--data-dir", help="../shared/data (PERSONA_DATA_DIR)"),
    out: Path | None = typer.Option(None, "--out", help="Default: engine/corpora/data/silver_en.jsonl"),
) -> None:
    """Checked silver labels (AGE_BAND, WORKS_AS, FROM_PLACE, SPEAKS, GENDER) on PersonaExt training sentences."""
    from collections import Counter

    from engine.train.silver import SILVER, label

    settings = settings_of(ctx)
    rows = label(data_dir or settings.data.root)
    target = out or SILVER
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(r.model_dump_json() + "\n" for r in rows), encoding="utf-8")
    kept = Counter(s.predicate for r in rows for s in r.silver)
    rejected = Counter(why for r in rows for _, _, why in r.rejected)
    console.print(f"{len(rows)} sentences; kept {dict(kept)}; rejected {dict(rejected)}; wrote {target}")


@train_app.command("translate-es")
def translate_es(
    ctx: typer.Context,
    data_dir: Path | None = typer.Option(None, "--data-dir", help="../shared/data (PERSONA_DATA_DIR)"),
    out: Path | None = typer.Option(None, "--out", help="Default: engine/corpora/data/silver_es.jsonl"),
    train: int = typer.Option(0, min=0, help="English training-split sentences to translate"),
    dev: int = typer.Option(0, min=0, help="English dev-split sentences to translate"),
    test: int = typer.Option(0, min=0, help="English test-split sentences to translate"),
    seed: int = typer.Option(13, help="Sampling seed"),
    batch: int = typer.Option(8, min=1, help="Sentences the LLM decodes together"),
) -> None:
    """Spanish silver facts: labelled English sentences translated by the local LLM with each object
    marked [[...]], kept only when every Spanish object grounds like its English one (same QID or literal).
    Appends to --out, skipping sentences it already holds, so runs add up; rows are written as they come."""
    from collections import Counter

    from engine.corpora.es_silver import SILVER_ES, read_silver_es
    from engine.extract import make_backend
    from engine.train.examples import personaext_examples
    from engine.train.silver import silver_examples
    from engine.train.translate import candidates, translate

    settings = settings_of(ctx)
    data = data_dir or settings.data.root
    if not data.is_dir():
        fail(f"training data not found at {data}: it lives in ../shared/data (see its README); pass --data-dir",
             EXIT_USAGE)
    target = out or SILVER_ES
    done = {r.key for r in read_silver_es(target)}
    silver = silver_examples()
    relabelled = {e.text for e in silver}
    english = [e for e in personaext_examples(data) if e.text not in relabelled and e.text not in done]
    chosen = candidates([*english, *(e for e in silver if e.text not in done)],
                        {"train": train, "dev": dev, "test": test}, seed)
    if not chosen:
        fail("nothing to translate: pass --train / --dev / --test counts", EXIT_USAGE)
    backend = make_backend(settings.llm, model_cache=settings.model_cache)
    why: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    with progress_bar() as bar, target.open("a", encoding="utf-8") as handle:
        task_id = bar.add_task("translating to Spanish", total=len(chosen))
        for result in translate(backend, chosen, batch=batch, progress=lambda n: bar.advance(task_id, n)):
            if result.row is None:
                why[result.reason] += 1
                continue
            handle.write(result.row.model_dump_json() + "\n")
            handle.flush()
            kept[result.row.split] += 1
    console.print(f"kept {sum(kept.values())} of {len(chosen)} ({dict(kept)}); dropped {dict(why)}; wrote {target}")
