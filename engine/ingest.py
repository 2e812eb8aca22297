"""Ingest: read records (JSONL / CSV / Parquet), validate, dedupe, detect language, redact PII,
extract facts + sentiment, and hand the documents to the graph (``persona ingest FILE``).

Every bad record becomes a RecordError naming the line (or row) and the field; the batch goes on.
No raw text is ever logged or cached: redaction happens before the extractor, the cache and
the store see the text.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer
from pydantic import BaseModel, Field, ValidationError

from engine.contracts import MAX_TEXT, DocumentSentiment, Fact, Record

if TYPE_CHECKING:
    from engine.extract import ExtractionCache, Extractor
    from engine.privacy import Redactor

LANGS: tuple[str, ...] = ("en", "zh", "es", "other")
OVERSIZE_POLICIES = ("chunk", "truncate")
# A document longer than MAX_TEXT is split into at most this many parts; beyond that, truncated.
MAX_CHUNKS = 10


# --- per-record outcomes -------------------------------------------------------------------


class RecordError(BaseModel):
    """A problem with one input record. ``fatal=False`` is a warning: the record still goes on."""

    source: str
    line: int | None = None  # 1-based line (JSONL, CSV) or row (Parquet)
    field: str | None = None
    doc_id: str | None = None
    reason: str
    fatal: bool = True

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        field = f" [{self.field}]" if self.field else ""
        kind = "error" if self.fatal else "warning"
        return f"{where}{field} {kind}: {self.reason}"


DocStatus = Literal["ok", "empty", "duplicate", "failed"]


class ExtractedDocument(BaseModel):
    """One document after redaction and extraction: the unit ``apply_documents`` consumes.

    Apply only ``status == "ok"`` documents to the graph; the others are reported.
    """

    doc_id: str
    user_id: str
    ts: datetime
    source: str
    lang: str
    # The redacted text (None when Settings.store_text is off). Never the raw text.
    redacted_text: str | None
    facts: list[Fact] = Field(default_factory=list)
    sentiment: DocumentSentiment = Field(
        default_factory=lambda: DocumentSentiment(label="neutral", confidence=0.0)
    )
    dropped: dict[str, int] = Field(default_factory=dict)
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    cached: bool = False
    error: str | None = None
    status: DocStatus = "ok"
    # Placeholder → count of PII replaced before the model saw the text.
    redactions: dict[str, int] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


# --- language detection -------------------------------------------------------------------

_STOPWORDS_RAW: dict[str, set[str]] = {
    "en": set(
        "the and is are was were i you my to of in it that this with for have has not but so "
        "very at be on they we just what your our would could there their been from an or "
        "if about will can all do don't i'm it's".split()
    ),
    "es": set(
        "el la los las que y es un por para con muy pero lo se del al yo está como más "
        "su sus le les ya fue hay todo pues porque cuando también eso esto ni nos este esta "
        "estoy tengo soy qué gracias".split()
    ),
    "fr": set("le les des et est je pas du avec pour dans ce qui très une sur mais vous nous".split()),
    "de": set("der die das und ist ich nicht ein eine mit für auf zu sehr auch wir sie aber".split()),
    "pt": set("não com você eu muito são ela isso também uma obrigado ele mas foi".split()),
    "it": set("il di che è non sono per molto gli della questo anche ma ho".split()),
}


def _distinct(sets: dict[str, set[str]]) -> dict[str, frozenset[str]]:
    """Drop words shared by two languages ("una", "no", "de"): they are no cue."""
    counts = Counter(w for words in sets.values() for w in words)
    return {lang: frozenset(w for w in words if counts[w] == 1) for lang, words in sets.items()}


STOPWORDS = _distinct(_STOPWORDS_RAW)
_WORD = re.compile(r"[a-zà-öø-ÿ']+")
_SPANISH_MARKS = re.compile(r"[ñ¿¡]")


def normalise_lang(code: str | None) -> str | None:
    """'zh-CN' → 'zh', 'es_MX' → 'es', 'EN' → 'en', 'fr' → 'other'; None/empty → None."""
    if not code or not code.strip():
        return None
    base = re.split(r"[-_]", code.strip().lower())[0]
    if base in ("zh", "cmn", "yue", "zho", "chi"):
        return "zh"
    if base in ("en", "eng"):
        return "en"
    if base in ("es", "spa"):
        return "es"
    return "other"


def detect_language(text: str) -> str:
    """en / zh / es / other from script ratios and stopword cues (no model, ~20 µs)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "other"
    n = len(letters)
    han = sum(1 for c in letters if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")
    kana_hangul = sum(1 for c in letters if "\u3040" <= c <= "\u30ff" or "\uac00" <= c <= "\ud7af")
    if han / n > 0.3 and kana_hangul / n < 0.1:
        return "zh"
    latin = sum(1 for c in letters if unicodedata.name(c, "").startswith("LATIN"))
    if latin / n < 0.5:
        return "other"
    words = _WORD.findall(text.lower())
    scores = {lang: sum(1 for w in words if w in stop) for lang, stop in STOPWORDS.items()}
    scores["es"] += 2 * len(_SPANISH_MARKS.findall(text.lower()))
    best = max(scores, key=lambda k: scores[k])
    if scores[best] == 0:
        # Short texts without cues ("Great value!"): ASCII is most likely English.
        return "en" if text.isascii() else "other"
    return best if best in ("en", "es") else "other"


# --- reading -------------------------------------------------------------------------------


def _binary_reason(text: str) -> str | None:
    """Text that is mostly control characters (or has NULs) came from a binary file."""
    if "\x00" in text:
        return "binary content (NUL bytes) in text"
    if not text:
        return None
    controls = sum(1 for c in text if unicodedata.category(c) == "Cc" and c not in "\n\r\t")
    if controls / len(text) > 0.05:
        return f"binary content ({controls} control characters) in text"
    return None


def content_doc_id(user_id: str, text: str) -> str:
    """Stable id for records without doc_id: the content hash of (user, text)."""
    return "h:" + hashlib.sha256(f"{user_id}\x00{text}".encode()).hexdigest()[:24]


def _validation_error(exc: ValidationError, source: str, line: int, doc_id: str | None) -> RecordError:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or None
    msg = first["msg"]
    if first["type"] == "missing":
        msg = "missing"
    return RecordError(source=source, line=line, field=field, doc_id=doc_id, reason=msg)


def _split_text(text: str, size: int) -> list[str]:
    """Split at whitespace or sentence ends near the size limit so words stay whole."""
    parts: list[str] = []
    while len(text) > size:
        cut = max(text.rfind(sep, 0, size) for sep in ("\n", "。", ". ", "! ", "? ", " "))
        cut = cut + 1 if cut > size // 2 else size
        parts.append(text[:cut])
        text = text[cut:]
    if text:
        parts.append(text)
    return parts


def records_from_dict(
    data: Any, source: str, line: int, *, oversize: str = "chunk"
) -> list[Record | RecordError]:
    """Validate one raw mapping into Record(s); oversized text is chunked or truncated."""
    if not isinstance(data, dict):
        return [RecordError(source=source, line=line, reason=f"expected an object, got {type(data).__name__}")]
    doc_id = data.get("doc_id")
    doc_id = str(doc_id) if doc_id not in (None, "") else None
    text = data.get("text")
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            return [RecordError(source=source, line=line, field="text", doc_id=doc_id, reason="invalid UTF-8")]
    if text is None:
        return [RecordError(source=source, line=line, field="text", doc_id=doc_id, reason="missing")]
    if not isinstance(text, str):
        return [RecordError(source=source, line=line, field="text", doc_id=doc_id, reason="must be a string")]
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return [RecordError(source=source, line=line, field="text", doc_id=doc_id, reason="invalid UTF-8")]
    if (why := _binary_reason(text)) is not None:
        return [RecordError(source=source, line=line, field="text", doc_id=doc_id, reason=why)]
    base = {**data, "doc_id": doc_id}
    if isinstance(data.get("user_id"), int) and not isinstance(data.get("user_id"), bool):
        base["user_id"] = str(data["user_id"])  # numeric ids in JSON are still ids
    texts = [text]
    out: list[Record | RecordError] = []
    if len(text) > MAX_TEXT:
        parts = _split_text(text, MAX_TEXT)
        if oversize == "truncate" or len(parts) > MAX_CHUNKS:
            keep = 1 if oversize == "truncate" else MAX_CHUNKS
            texts = parts[:keep]
            kept = sum(len(p) for p in texts)
            how = "truncated" if keep == 1 else f"chunked into {keep} documents and truncated"
            reason = f"text of {len(text)} characters {how}: the last {len(text) - kept} were dropped"
        else:
            texts = parts
            reason = f"text of {len(text)} characters chunked into {len(parts)} documents (limit {MAX_TEXT})"
        out.append(RecordError(source=source, line=line, field="text", doc_id=doc_id, reason=reason, fatal=False))
    for k, part in enumerate(texts):
        fields = {**base, "text": part}
        if len(texts) > 1:
            stem = doc_id or content_doc_id(str(data.get("user_id", "")), text)
            fields["doc_id"] = f"{stem}#part{k + 1}"
        try:
            out.append(Record.model_validate(fields))
        except ValidationError as exc:
            return [_validation_error(exc, source, line, doc_id)]
    return out


def _read_jsonl(path: Path, oversize: str) -> Iterator[Record | RecordError]:
    source = path.name
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield RecordError(source=source, line=lineno, reason=f"invalid UTF-8 at byte {exc.start}")
                continue
            if "\x00" in line:
                yield RecordError(source=source, line=lineno, reason="binary content (NUL bytes)")
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                yield RecordError(source=source, line=lineno, reason=f"bad JSON: {exc.msg} at column {exc.colno}")
                continue
            yield from records_from_dict(data, source, lineno, oversize=oversize)


def _read_csv(path: Path, oversize: str) -> Iterator[Record | RecordError]:
    source = path.name
    csv.field_size_limit(10_000_000)
    # surrogateescape keeps invalid bytes visible as lone surrogates, reported per row below.
    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            for row in reader:
                data = {k: (v if v != "" else None) for k, v in row.items() if k is not None}
                yield from records_from_dict(data, source, reader.line_num, oversize=oversize)
        except csv.Error as exc:
            yield RecordError(source=source, line=reader.line_num, reason=f"bad CSV: {exc}")


def _read_parquet(path: Path, oversize: str) -> Iterator[Record | RecordError]:
    import pyarrow.parquet as pq

    source = path.name
    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for data in batch.to_pylist():
            row += 1
            yield from records_from_dict(data, source, row, oversize=oversize)


def read_records(path: str | Path, *, oversize: str = "chunk") -> Iterator[Record | RecordError]:
    """Records from a .jsonl/.ndjson, .csv or .parquet file, with per-record errors."""
    path = Path(path)
    if oversize not in OVERSIZE_POLICIES:
        raise ValueError(f"oversize must be one of {OVERSIZE_POLICIES}")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        yield from _read_jsonl(path, oversize)
    elif suffix == ".csv":
        yield from _read_csv(path, oversize)
    elif suffix in (".parquet", ".pq"):
        yield from _read_parquet(path, oversize)
    else:
        raise ValueError(f"unsupported input {path.name}: use .jsonl, .csv or .parquet")


# --- processing ---------------------------------------------------------------------------


def process_records(
    records: Iterable[Record],
    extractor: Extractor,
    *,
    redactor: Redactor | None = None,
    cache: ExtractionCache | None = None,
    store_text: bool = True,
) -> Iterator[ExtractedDocument]:
    """Dedupe → language → redact → (cache | extract) per record, lazily, one document each."""
    from engine.extract.cache import cache_key, text_hash
    from engine.privacy import get_redactor

    redactor = redactor or get_redactor()
    seen_ids: set[str] = set()
    seen_content: set[str] = set()
    version = extractor.version
    for rec in records:
        started = time.perf_counter()
        doc_id = rec.doc_id or content_doc_id(rec.user_id, rec.text)
        content = content_doc_id(rec.user_id, rec.text)
        lang = normalise_lang(rec.lang) or detect_language(rec.text)
        base = {"doc_id": doc_id, "user_id": rec.user_id, "ts": rec.ts, "source": rec.source, "lang": lang}
        if doc_id in seen_ids or content in seen_content:
            yield ExtractedDocument(
                **base, redacted_text=None, status="duplicate",
                notes=["duplicate of an earlier record (same doc_id or same user and text)"],
            )
            continue
        seen_ids.add(doc_id)
        seen_content.add(content)
        if not rec.text.strip():
            yield ExtractedDocument(**base, redacted_text="" if store_text else None, status="empty",
                                    notes=["empty text: nothing to extract, no model call"])
            continue
        redaction = redactor.redact(rec.text, lang)
        notes = ["language not en/zh/es: extraction quality is unmeasured"] if lang == "other" else []
        key = cache_key(redaction.text, lang, version)
        result = cache.get(key) if cache is not None else None
        cached = result is not None
        if cached and cache is not None:
            cache.add_owner(key, rec.user_id)  # so forget of this user finds the shared row
        if result is None:
            try:
                result = extractor.extract(redaction.text, lang)
            except Exception as exc:  # noqa: BLE001 - one bad document must not stop the batch
                yield ExtractedDocument(
                    **base, redacted_text=redaction.text if store_text else None, status="failed",
                    error=f"{type(exc).__name__}: {exc}"[:500], redactions=redaction.counts,
                    seconds=round(time.perf_counter() - started, 4),
                )
                continue
            if cache is not None and result.error is None:
                cache.put(key, result, text_hash=text_hash(redaction.text, lang), owner=rec.user_id)
        yield ExtractedDocument(
            **base,
            redacted_text=redaction.text if store_text else None,
            facts=result.facts,
            sentiment=result.sentiment,
            dropped=result.dropped,
            llm_calls=0 if cached else result.llm_calls,
            prompt_tokens=0 if cached else result.prompt_tokens,
            completion_tokens=0 if cached else result.completion_tokens,
            seconds=round(time.perf_counter() - started, 4),
            cached=cached,
            error=result.error,
            status="failed" if result.error else "ok",
            redactions=redaction.counts,
            notes=notes + result.notes,
        )


# --- the `persona ingest` command -----------------------------------------------------------


class IngestSummary(BaseModel):
    records: int = 0
    record_errors: int = 0
    warnings: int = 0
    docs: Counter[str] = Field(default_factory=Counter)
    facts: int = 0
    dropped: Counter[str] = Field(default_factory=Counter)
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: int = 0
    seconds: float = 0.0

    def add(self, doc: ExtractedDocument) -> None:
        self.docs[doc.status] += 1
        self.facts += len(doc.facts)
        self.dropped.update(doc.dropped)
        self.llm_calls += doc.llm_calls
        self.prompt_tokens += doc.prompt_tokens
        self.completion_tokens += doc.completion_tokens
        self.cached += int(doc.cached)


def _summary_table(summary: IngestSummary):
    from rich.table import Table

    table = Table(title="persona ingest", show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("records read", str(summary.records))
    table.add_row("record errors", str(summary.record_errors))
    table.add_row("warnings (chunked/truncated)", str(summary.warnings))
    for status in ("ok", "empty", "duplicate", "failed"):
        table.add_row(f"documents {status}", str(summary.docs.get(status, 0)))
    table.add_row("documents from cache", str(summary.cached))
    table.add_row("facts kept", str(summary.facts))
    for reason, n in sorted(summary.dropped.items()):
        table.add_row(f"facts dropped: {reason}", str(n))
    table.add_row("LLM calls", str(summary.llm_calls))
    table.add_row("prompt tokens", str(summary.prompt_tokens))
    table.add_row("completion tokens", str(summary.completion_tokens))
    table.add_row("seconds", f"{summary.seconds:.1f}")
    ok = max(summary.docs.get("ok", 0), 1)
    table.add_row("seconds per document", f"{summary.seconds / ok:.2f}")
    return table


def ingest(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Records: .jsonl, .csv or .parquet"),
    backend: str | None = typer.Option(None, help="llama_cpp (default), openai or transformers"),
    model: str | None = typer.Option(None, help="Model path / name for the backend"),
    base_url: str | None = typer.Option(None, help="OpenAI-compatible server URL (openai backend)"),
    batch_size: int = typer.Option(32, min=1, help="Documents per graph write"),
    oversize: str = typer.Option("chunk", help="Texts over 20,000 characters: chunk or truncate"),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not reuse cached extractions"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Extract only; write nothing to the graph"),
    output: Path | None = typer.Option(None, help="Also write extracted documents (JSONL) here"),
    errors_out: Path | None = typer.Option(None, help="Write per-record errors (JSONL) here"),
) -> None:
    """Ingest user texts: validate → dedupe → language → PII redaction → LLM → linking → fusion → rules.

    Prints a summary (documents, facts, drops by reason, LLM calls, tokens, seconds); exit code 1
    when some records failed.
    """
    import typer
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from engine.config import Settings
    from engine.extract import ExtractionCache, make_extractor

    console = Console(stderr=True)
    if not file.exists():
        console.print(f"[red]no such file: {file}[/red]")
        raise typer.Exit(2)
    settings = Settings.from_env()
    extractor = make_extractor(
        backend, allow_sensitive=settings.allow_sensitive, model=model, base_url=base_url
    )
    cache = None if no_cache else ExtractionCache(Path(settings.home) / "extraction_cache.sqlite")
    summary = IngestSummary()
    started = time.perf_counter()
    store = None
    apply_documents = None
    if not dry_run:
        from engine.pipeline import apply_documents  # the lead's linking + fusion entry point
        from engine.store import open_store

        store = open_store(settings)
    out_handle = output.open("w", encoding="utf-8") if output else None
    err_handle = errors_out.open("w", encoding="utf-8") if errors_out else None
    batch: list[ExtractedDocument] = []

    def records() -> Iterator[Record]:
        for item in read_records(file, oversize=oversize):
            if isinstance(item, RecordError):
                if item.fatal:
                    summary.record_errors += 1
                else:
                    summary.warnings += 1
                if err_handle:
                    err_handle.write(item.model_dump_json() + "\n")
                else:
                    console.print(f"[yellow]{item}[/yellow]")
                continue
            summary.records += 1
            yield item

    def flush() -> None:
        if batch and store is not None and apply_documents is not None:
            apply_documents(store, settings, [d for d in batch if d.status == "ok"])
        batch.clear()

    try:
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
            TextColumn("{task.completed} docs"), TimeElapsedColumn(), console=console,
        ) as progress:
            task = progress.add_task(f"ingesting {file.name}", total=None)
            docs = process_records(records(), extractor, cache=cache, store_text=settings.store_text)
            for doc in docs:
                summary.add(doc)
                if out_handle:
                    out_handle.write(doc.model_dump_json() + "\n")
                if doc.status == "failed":
                    console.print(f"[red]{doc.doc_id}: {doc.error}[/red]")
                batch.append(doc)
                if len(batch) >= batch_size:
                    flush()
                progress.advance(task)
            flush()
    finally:
        for handle in (out_handle, err_handle):
            if handle:
                handle.close()
        if cache is not None:
            cache.close()
        if store is not None:
            store.close()
    summary.seconds = time.perf_counter() - started
    Console().print(_summary_table(summary))
