"""`persona eval …`: quality measured on the real data in ../shared/data (the product and the
default tests do not need it; each command says where it looks when the data is missing)."""

from __future__ import annotations

import json
from itertools import zip_longest
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from engine.cli._util import EXIT_USAGE, fail, settings_of
from engine.config import LLMSettings
from engine.eval.extraction import TEST_SETS, report
from engine.eval.linking import run_linking_eval
from engine.eval.sentiment import balanced_sample, macro_f1, run_sentiment, test_rows

eval_app = typer.Typer(help="Measure quality on the real data in ../shared/data.", no_args_is_help=True)


def _llm(ctx: typer.Context, backend: str | None) -> LLMSettings:
    llm = settings_of(ctx).llm
    return llm.model_copy(update={"backend": backend}) if backend else llm


def linking(
    ctx: typer.Context,
    data_dir: Path = typer.Option(
        None, "--data-dir", help="entity_linking folder (default ../shared/data/entity_linking)"
    ),
    vocab_half: str = typer.Option(
        "heldout", "--vocab-half", help="persona-vocabulary rows to score: heldout (default) | tune | all"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Entity linking: KB coverage, in-KB accuracy, NIL precision/recall per file, multilingual check,
    persona-vocabulary check (accuracy and wrong-QID rate per language and domain)."""
    console = Console(width=max(150, Console().width))
    settings = settings_of(ctx)
    try:
        result = run_linking_eval(
            data_dir or settings.data.entity_linking_dir(),
            wikidata_dir=settings.data.wikidata_dir(),
            vocab_half=vocab_half,
        )
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if as_json:
        console.print_json(json.dumps(result))
        return
    table = Table(title="Entity linking (no predicate; context = tweet or co-mentions)")
    cols = [
        "file",
        "mentions",
        "gold_linked",
        "kb_coverage",
        "in_kb_accuracy",
        "accuracy_all_gold",
        "gold_nil",
        "nil_precision",
        "nil_recall",
        "mentions_per_s",
    ]
    for c in cols:
        table.add_column(c, justify="left" if c == "file" else "right")
    for row in result["files"]:
        table.add_row(*[f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in cols])
    console.print(table)
    ml = Table(title="Multilingual check (KB labels: en / zh-Hans / zh-Hant / es → same QID)")
    for k in result["multilingual"]:
        ml.add_column(k, justify="right")
    ml.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in result["multilingual"].values()])
    console.print(ml)
    if result.get("vocabulary"):
        _print_vocab(console, result["vocabulary"])
    if result.get("fresh"):
        _print_fresh(console, result["fresh"])


def _print_vocab(console: Console, vocab: dict[str, Any]) -> None:
    title = (
        f"Persona vocabulary ({vocab['half']} half: {vocab['rows']:,} of {vocab['rows_total']:,} rows; "
        "NIL counts as a miss, wrong QID counted separately)"
    )
    console.print(_rates_table(title, vocab, "domain", vocab["by_domain"]))
    cl = vocab["cross_language"]
    console.print(
        f"cross-language same QID (en / zh-Hans / zh-Hant / es): {cl['same_qid']:.3f} "
        f"over {cl['concepts']} concepts"
    )
    splits = Table(title="pairs that still split (first 15)")
    for c in ("gold", "en", "zh-Hans", "zh-Hant", "es"):
        splits.add_column(c)
    for split in cl["splits"][:15]:
        forms = ("en", "zh-Hans", "zh-Hant", "es")
        splits.add_row(split["gold"], *(f"{split['forms'][f]} → {split['got'][f]}" for f in forms))
    console.print(splits)


def _print_fresh(console: Console, fresh: dict[str, Any]) -> None:
    if "skipped" in fresh:
        console.print(f"[yellow]fresh check skipped: {fresh['skipped']}[/yellow]")
        return
    title = (
        f"Fresh check ({fresh['rows']:,} generated forms of held-out concepts: inflections from simplemma, "
        "Traditional script, quantities; never tuned on)"
    )
    console.print(_rates_table(title, fresh, "form", fresh["by_form"]))


def _rates_table(title: str, result: dict[str, Any], kind: str, by_kind: dict[str, Any]) -> Table:
    """Accuracy / wrong QID / NIL overall, per language and per `kind` (domain, form)."""
    table = Table(title=title)
    for c in ("group", "n", "accuracy", "wrong_qid", "nil"):
        table.add_column(c, justify="left" if c == "group" else "right")
    groups = [("all", result["all"])] + [(f"lang {k}", v) for k, v in result["by_lang"].items()]
    groups += [(f"{kind} {k}", v) for k, v in by_kind.items()]
    for name, row in groups:
        table.add_row(name, str(row["n"]), f"{row['accuracy']:.3f}", f"{row['wrong_qid']:.3f}", f"{row['nil']:.3f}")
    return table


def _extractor(ctx: typer.Context, tier: str, backend: str | None, min_confidence: float | None = None):
    from engine.extract import BackendError, ExtractorConfig, make_tier

    settings = settings_of(ctx)
    config = ExtractorConfig() if min_confidence is None else ExtractorConfig(min_confidence=min_confidence)
    try:
        return make_tier(tier, _llm(ctx, backend), model_cache=settings.model_cache, llm_config=config)
    except (BackendError, ValueError) as exc:
        fail(str(exc), EXIT_USAGE)


def _data(ctx: typer.Context, data_dir: Path | None) -> Path:
    data = data_dir or settings_of(ctx).data.root
    if not data.is_dir():
        fail(f"eval data not found at {data}: it lives in ../shared/data next to the repository "
             "(see ../shared/data/README.md); pass --data-dir", EXIT_USAGE)
    return data


def extraction(
    ctx: typer.Context,
    data_dir: Path | None = typer.Option(None, "--data-dir", help="../shared/data (PERSONA_DATA_DIR)"),
    extractor: str = typer.Option("cascade", "--extractor",
                                  help="encoder, llm or cascade; several comma-separated print side by side"),
    sets: str = typer.Option(",".join(TEST_SETS), "--sets", help="Comma-separated test sets: personaext, "
                             "xpersona-zh (projected Chinese), kvpi-zh (LIVES_IN / GENDER), es-silver (translated, "
                             "checked; skipped while `persona train translate-es` has built no test rows), "
                             "silver-en (PersonaExt test sentences with checked WORKS_AS / AGE_BAND / GENDER / "
                             "SPEAKS / ... labels)"),
    size: int | None = typer.Option(None, help="Seeded sample of each test split (default: all of it; 600 when "
                                               "the llm tier runs, which takes ~1.6 s per row)"),
    seed: int = typer.Option(13, help="Sampling seed"),
    backend: str | None = typer.Option(None, help="LLM backend: llama_cpp (default), openai or transformers"),
    min_confidence: float | None = typer.Option(None, help="Override the LLM tier's fact confidence threshold"),
    out: Path | None = typer.Option(None, help="Write the summary (JSON) and per-row results (.rows.jsonl) here"),
) -> None:
    """Fact extraction on the test splits (PersonaExt en, XPersona zh, KvPI zh): P/R/F1, recall per
    predicate, ECE per set, frequent errors; several tiers side by side."""
    from engine.eval.extraction import run_items, set_summary, test_items
    from engine.privacy import get_redactor

    console = Console()
    data = _data(ctx, data_dir)
    tiers = [t.strip() for t in extractor.split(",") if t.strip()]
    names = [n.strip() for n in sets.split(",") if n.strip()]
    if unknown := [n for n in names if n not in TEST_SETS]:
        fail(f"--sets: unknown test set {unknown[0]!r}; choose from {', '.join(TEST_SETS)}", EXIT_USAGE)
    size = size if size is not None or "llm" not in tiers else 600
    items = {name: test_items(name, data, size, seed) for name in names}
    for name in [n for n, chosen in items.items() if not chosen]:
        console.print(f"[yellow]{name}: no test rows, skipped[/yellow]")
        del items[name]
    redactor = get_redactor()
    summary: dict[str, Any] = {"data": str(data), "split": "test", "size": size, "seed": seed, "tiers": {}}
    rows: list[dict[str, Any]] = []
    for tier_name in tiers:
        tier = _extractor(ctx, tier_name, backend, min_confidence)
        per_set: dict[str, Any] = {}
        with Progress(console=console) as progress:
            for name, chosen in items.items():
                task = progress.add_task(f"{name} test ({len(chosen)} rows, {tier_name})", total=len(chosen))
                results = run_items(chosen, tier, redactor, lambda n=1, t=task: progress.advance(t, n))
                per_set[name] = report(results) if name == "personaext" else set_summary(
                    results, by_predicate=("LIVES_IN", "GENDER") if name == "kvpi-zh" else ())
                rows += [{"tier": tier_name, "set": name, **r.model_dump()} for r in results]
        summary["tiers"][tier_name] = per_set
        if len(tiers) == 1 and "personaext" in per_set:
            _print(console, {**per_set["personaext"], "extractor": tier_name, "split": "test",
                             "size": len(items["personaext"])})
    _print_sets(console, summary["tiers"])
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, ensure_ascii=False, indent=2))
        with out.with_suffix(".rows.jsonl").open("w", encoding="utf-8") as handle:
            for r in rows:
                handle.write(json.dumps(r, ensure_ascii=False) + "\n")


def _headline(per_set: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """(set or set/predicate) → P, R, F1, ECE, recall per predicate."""
    out: dict[str, dict[str, Any]] = {}
    for name, s in per_set.items():
        scores = s.get("scores", s)
        recall = s.get("recall_by_predicate") or {k: v["recall"] for k, v in s.get("per_predicate", {}).items()
                                                  if v.get("gold")}
        out[name] = {**{k: scores[k] for k in ("precision", "recall", "f1")}, "ece": s["ece"], "by": recall}
        for pred in ("LIVES_IN", "GENDER"):
            if pred in s:
                out[f"{name} {pred}"] = {**{k: s[pred][k] for k in ("precision", "recall", "f1")},
                                         "ece": s[pred]["ece"], "by": {}}
    return out


def _print_sets(console: Any, tiers: dict[str, dict[str, Any]]) -> None:
    heads = {tier: _headline(per_set) for tier, per_set in tiers.items()}
    table = Table(title="Fact extraction by test set (test splits): P / R / F1 / ECE")
    table.add_column("test set")
    for tier in heads:
        table.add_column(tier, justify="right")
    keys = list(dict.fromkeys(k for h in heads.values() for k in h))
    for key in keys:
        table.add_row(key, *(" / ".join(f"{h[key][m]:.3f}" for m in ("precision", "recall", "f1", "ece"))
                             if key in h else "-" for h in heads.values()))
    console.print(table)
    recall = Table(title="Recall per gold predicate (test splits)")
    recall.add_column("test set")
    recall.add_column("predicate")
    for tier in heads:
        recall.add_column(tier, justify="right")
    for key in keys:
        preds = sorted({p for h in heads.values() if key in h for p in h[key]["by"]})
        for pred in preds:
            recall.add_row(key, pred, *(str(h[key]["by"].get(pred, "-")) if key in h else "-" for h in heads.values()))
    console.print(recall)


def _print(console: Any, summary: dict[str, Any]) -> None:
    table = Table(title=f"PersonaExt extraction, {summary['extractor']} ({summary['split']}, n={summary['size']})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    s = summary["scores"]
    for key in ("precision", "recall", "f1", "predictions"):
        table.add_row(key, str(s[key]))
    for key in ("valid_json_first_try", "valid_json_after_repair", "facts_dropped_share",
                "llm_calls_per_doc", "prompt_tokens_per_doc", "completion_tokens_per_doc",
                "seconds_per_doc"):
        table.add_row(key, str(summary[key]))
    for reason, n in summary["dropped_by_reason"].items():
        table.add_row(f"dropped: {reason}", str(n))
    console.print(table)
    sweep = Table(title="min_confidence sweep")
    for col in ("min_confidence", "predictions", "precision", "recall", "f1"):
        sweep.add_column(col, justify="right")
    for row in summary["confidence_sweep"]:
        sweep.add_row(*(str(row[c]) for c in ("min_confidence", "predictions", "precision", "recall", "f1")))
    console.print(sweep)
    per = Table(title="per predicate (test)")
    for col in ("predicate", "gold", "predicted", "precision", "recall"):
        per.add_column(col, justify="right")
    for name, c in summary["per_predicate"].items():
        per.add_row(name, *(str(c.get(k, 0)) for k in ("gold", "predicted", "precision", "recall")))
    console.print(per)
    errors = Table(title="most frequent errors")
    for col in ("kind", "predicted", "gold", "count"):
        errors.add_column(col)
    for e in summary["errors"]:
        errors.add_row(e["kind"], e["predicted"], e["gold"], str(e["count"]))
    console.print(errors)
    console.print(f"ECE of fact confidence: {summary['ece']}; facts by tier: {summary['tiers']}")


def sentiment(
    ctx: typer.Context,
    data_dir: Path | None = typer.Option(None, "--data-dir", help="../shared/data (PERSONA_DATA_DIR)"),
    extractor: str = typer.Option("cascade", "--extractor", help="encoder, llm or cascade"),
    size: int = typer.Option(300, help="Rows per language from the test split (balanced, seeded)"),
    seed: int = typer.Option(13, help="Sampling seed"),
    langs: str = typer.Option("zh,en,es", help="Comma-separated languages"),
    backend: str | None = typer.Option(None, help="LLM backend: llama_cpp (default), openai or transformers"),
    out: Path | None = typer.Option(None, help="Write the summary (JSON) and per-row results (.rows.jsonl) here"),
) -> None:
    """Document sentiment macro-F1 per language on the held-out test split (zh, en, es)."""
    from engine.privacy import get_redactor

    console = Console()
    data = _data(ctx, data_dir)
    wanted = [lang.strip() for lang in langs.split(",") if lang.strip()]
    tier = _extractor(ctx, extractor, backend)
    redactor = get_redactor()
    samples = {lang: balanced_sample(test_rows(data, lang), size, seed) for lang in wanted}
    order = [row for group in zip_longest(*samples.values()) for row in group if row is not None]
    summary: dict[str, Any] = {"seed": seed, "size_per_language": size, "extractor": extractor, "split": "test"}
    with Progress(console=console) as progress:
        task = progress.add_task(f"sentiment {','.join(wanted)} ({len(order)} rows, {extractor})", total=len(order))
        results = run_sentiment(order, tier, redactor, lambda n=1: progress.advance(task, n))
    for lang in wanted:
        summary[lang] = macro_f1([r for r in results if r.lang == lang])
    table = Table(title=f"Document sentiment, {extractor} (test split, seed={seed}, {size} per language)")
    for col in ("lang", "n", "macro_f1", "accuracy", "f1 per label", "predicted", "s/doc", "LLM calls/doc"):
        table.add_column(col)
    for lang in wanted:
        s = summary[lang]
        table.add_row(lang, str(s["n"]), str(s["macro_f1"]), str(s["accuracy"]), json.dumps(s["f1_per_label"]),
                      json.dumps(s["predicted"]), str(s["seconds_per_doc"]), str(s["llm_calls_per_doc"]))
    console.print(table)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, ensure_ascii=False, indent=2))
        with out.with_suffix(".rows.jsonl").open("w", encoding="utf-8") as handle:
            for r in results:
                handle.write(r.model_dump_json() + "\n")


eval_app.command("linking")(linking)
eval_app.command("extraction")(extraction)
eval_app.command("sentiment")(sentiment)
