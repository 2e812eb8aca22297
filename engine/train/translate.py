"""Spanish silver facts by translation (`persona train translate-es`).

English sentences with labelled object spans (PersonaExt's gold spans, plus the checked silver facts of
`silver.py`) are marked `[[...]]` around each object and translated by the bundled LLM, which is asked
to keep the marks around the Spanish words that translate the object. A translation is kept only when
it carries as many marked spans as the English sentence and each marked Spanish object passes the check
of one English object of the same sentence: both link to the same Wikidata QID in the offline KB, or
both normalise to the same literal value. Anything else (a mark lost, an object the KB cannot ground,
a QID that changed in translation) drops the whole sentence, so no stated fact is left unlabelled.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

from pydantic import BaseModel

from engine.corpora.es_silver import SilverEsRow, SilverEsSpan
from engine.corpora.splits import Split, split_of
from engine.extract.encoder.tagging import Span
from engine.train.examples import FactExample

SYSTEM = (
    "You translate English sentences into natural, informal Spanish, as a Spanish speaker would write "
    "them. Some English words are marked with double square brackets like [[this]]. In your translation, "
    "put double square brackets around exactly the Spanish words that translate each marked part, and "
    "mark nothing else. Keep the meaning; do not add or drop facts. Answer as JSON: {\"es\": \"...\"}.\n"
    "Example: i love [[hiking]] and i have two [[dogs]] . -> "
    "{\"es\": \"Me encanta hacer [[senderismo]] y tengo dos [[perros]].\"}\n"
    "Example: i work as a [[nurse]] in a big hospital . -> "
    "{\"es\": \"Trabajo como [[enfermera]] en un hospital grande.\"}"
)
SCHEMA: dict[str, Any] = {"type": "object", "properties": {"es": {"type": "string", "maxLength": 400}},
                          "required": ["es"]}
_MARK = re.compile(r"\[\[(.+?)\]\]")


class Translation(BaseModel):
    """One English sentence's outcome: the kept row, or why it was dropped."""

    en: str
    es: str = ""
    row: SilverEsRow | None = None
    reason: Literal["", "marks", "grounding", "answer"] = ""  # why it was dropped, in short
    dropped: str = ""  # why, in full


def mark(text: str, spans: Sequence[Span]) -> str:
    """`text` with `[[` `]]` around each (non-overlapping) span."""
    out, at = [], 0
    for s in sorted(spans, key=lambda s: s.start):
        out += [text[at:s.start], "[[", text[s.start:s.end], "]]"]
        at = s.end
    return "".join([*out, text[at:]])


def unmark(marked: str) -> tuple[str, list[tuple[int, int, str]]]:
    """The plain sentence and the (start, end, text) of each marked part in it."""
    plain, spans, at = "", [], 0
    for m in _MARK.finditer(marked):
        plain += marked[at:m.start()]
        inner = m.group(1)
        word = inner.strip()
        start = len(plain) + len(inner) - len(inner.lstrip())
        spans.append((start, start + len(word), word))
        plain += inner
        at = m.end()
    plain += marked[at:]
    if "[[" in plain or "]]" in plain:
        return plain, []  # an unbalanced mark: nothing trustworthy
    return plain, spans


def object_check(predicate: str, obj: str, lang: str) -> str | None:
    """What grounds an object: `qid:<QID>`, `literal:<value>`, or None (a NIL object cannot be checked)."""
    import linkers
    from engine.eval.extraction import literal_value
    from graph_schema import get_predicate

    if get_predicate(predicate).literal_kind is not None:
        value = literal_value(predicate, obj)
        return f"literal:{value}" if value is not None else None
    try:
        qid = linkers.link_object(obj, predicate=predicate, lang=lang).qid
    except ValueError:
        return None
    return f"qid:{qid}" if qid else None


def checked_row(example: FactExample, answer: str) -> Translation:
    """The Spanish row when every marked object passes its English object's check."""
    es, marked = unmark(answer)
    es = es.strip()
    out = Translation(en=example.text, es=es)
    if not es or len(marked) != len(example.spans):
        return out.model_copy(update={"reason": "marks",
                                      "dropped": f"{len(marked)} marked spans for {len(example.spans)}"})
    left = [(s, example.text[s.start:s.end]) for s in example.spans]
    left = [(s, en_obj, object_check(s.predicate, en_obj, "en")) for s, en_obj in left]
    spans = []
    for start, end, text in marked:
        i = next((i for i, (s, _, check) in enumerate(left)
                  if check is not None and object_check(s.predicate, text, "es") == check), None)
        if i is None:
            return out.model_copy(update={"reason": "grounding",
                                          "dropped": f"{text!r} does not ground like any English object"})
        s, en_obj, check = left.pop(i)
        spans.append(SilverEsSpan(start=start, end=end, predicate=s.predicate, text=text, en=en_obj, check=check))
    row = SilverEsRow(es=es, en=example.text, key=example.text, source=example.source, spans=spans)
    return out.model_copy(update={"row": row})


def candidates(examples: Sequence[FactExample], per_split: dict[Split, int], seed: int
               ) -> list[FactExample]:
    """A seeded sample per split (the English sentence's) of labelled sentences whose every object
    can be grounded in English (the Spanish check needs something to compare against)."""
    rng = random.Random(seed)  # noqa: S311 - seeded sampling, not crypto
    pool = sorted({e.text: e for e in examples if e.spans}.values(), key=lambda e: e.text)
    rng.shuffle(pool)
    chosen: list[FactExample] = []
    taken: dict[str, int] = {}
    for e in pool:
        split = split_of(e.text)
        if taken.get(split, 0) >= per_split.get(split, 0):
            continue
        if all(object_check(s.predicate, e.text[s.start:s.end], "en") for s in e.spans):
            chosen.append(e)
            taken[split] = taken.get(split, 0) + 1
    return chosen


def translate(backend: Any, examples: Sequence[FactExample], *, batch: int = 8,
              progress: Callable[[int], None] | None = None) -> Iterator[Translation]:
    """Each example translated and checked, in order; `batch` requests per complete_many call."""
    for k in range(0, len(examples), batch):
        group = examples[k:k + batch]
        requests = [([{"role": "system", "content": SYSTEM},
                      {"role": "user", "content": mark(e.text, e.spans)}], SCHEMA, 160) for e in group]
        for example, result in zip(group, _complete_all(backend, requests), strict=True):
            yield _outcome(example, result)
        if progress is not None:
            progress(len(group))


def _complete_all(backend: Any, requests: list[Any]) -> list[Any]:
    """Decoded together where the backend can (llama.cpp), else one by one; errors stay per request."""
    if hasattr(backend, "complete_many"):
        return backend.complete_many(requests)
    out = []
    for messages, schema, max_tokens in requests:
        try:
            out.append(backend.complete(messages, schema, max_tokens=max_tokens))
        except Exception as exc:  # noqa: BLE001 - one failed request must not end the run
            out.append(exc)
    return out


def _outcome(example: FactExample, result: Any) -> Translation:
    import json

    if isinstance(result, Exception):
        return Translation(en=example.text, reason="answer", dropped=f"LLM error: {result}")
    try:
        answer = json.loads(result.text)["es"]
    except (ValueError, KeyError, TypeError):
        return Translation(en=example.text, reason="answer", dropped="no JSON answer")
    return checked_row(example, answer)
