"""Project English fact labels onto XPersona's Chinese translations (`persona train project-xpersona`).

English labels come from PersonaExt when it has the same utterance (gold), else from the English
tagger as teacher (persona sentences only: they state facts; chit-chat turns without a gold row are
left out). The object span moves to the Chinese sentence by similarity alignment over the encoder's
own multilingual token embeddings (SimAlign's argmax: a pair of sub-word tokens aligns when each is
the other's most similar token), checked against the knowledge base: when the English object links
to an entity whose Chinese label is in the sentence, that label is the span ("kb"); an aligned span
that links to the same entity is "align+kb"; a literal whose value normalises the same is "align+kb"
too; otherwise "align". Spans lose leading prepositions, numbers and classifiers ("在上海" → 上海,
"两条狗" → 狗), the form a fact object takes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.corpora import RELATION_MAP, read_personaext
from engine.corpora.xpersona import ProjectedRow, ProjectedSpan, SentencePair
from engine.train.examples import TRAIN_PREDICATE

ALIGN_LAYER = 8  # SimAlign's finding for multilingual BERT-style encoders: middle layers align best
_PUNCT = "，。！？、；：,.!?;:\"'“”‘’（）() "
# leading words that are not part of a Chinese fact object: prepositions, "I", numbers, classifiers
_ZH_LEAD = re.compile(r"^(?:[在住于到从去是做当我的了一二两三四五六七八九十几\d]|[个只条位名本辆台匹头家件份种])+")
_ZH_PREP = "在住于到从去"
_ZH_TAIL = re.compile(r"(?:[的了呢吗啊吧呀]|[，。！？、])+$")
_FOLD = re.compile(r"[^a-z0-9]")


def fold(sentence: str) -> str:
    """Letters and digits only: XPersona and PersonaExt tokenise punctuation differently."""
    return _FOLD.sub("", sentence.lower())


def clean_zh(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink [start, end) past punctuation, leading function words / quantities and trailing particles."""
    span = text[start:end]
    lead = len(span) - len(span.lstrip(_PUNCT))
    span = span.strip(_PUNCT)
    m = _ZH_LEAD.match(span)
    if m and m.end() < len(span):
        cut = m.end()
    else:  # all of it looks like function words: "在家" → 家, but "两个" is no object at all
        cut = min(len(span) - len(span.lstrip(_ZH_PREP)), len(span) - 1)
        if m and cut <= 0:
            return start + lead, start + lead
    body = _ZH_TAIL.sub("", span[cut:]) or span[cut:]
    begin = start + lead + cut
    return begin, begin + len(body)


def snap_words(text: str, start: int, end: int) -> tuple[int, int]:
    """Grow [start, end) to whole words (jieba): sub-word alignment often lands on one character of
    a word (素食主义者 → 食, 嘻哈 → 嘻)."""
    import jieba

    for _, s, e in jieba.tokenize(text):
        if s <= start < e:
            start = s
        if s < end <= e:
            end = e
    return start, end


def token_vectors(base: Any, texts: Sequence[str], layer: int = ALIGN_LAYER, batch_size: int = 64):
    """Per text: (offsets, L2-normalised vectors) of its real sub-word tokens at `layer`."""
    import torch

    from engine.extract.encoder.runner import encode, pad

    model, tokenizer = base
    encoded = encode(tokenizer, texts)
    out: list[tuple[list[tuple[int, int]], np.ndarray]] = [([], np.zeros((0, 1)))] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i].ids))
    with torch.inference_mode():
        for k in range(0, len(order), batch_size):
            chunk = order[k : k + batch_size]
            ids, mask = pad([encoded[i].ids for i in chunk], tokenizer.pad_token_id or 1)
            hidden = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[layer]
            hidden = torch.nn.functional.normalize(hidden, dim=-1).numpy()
            for row, i in enumerate(chunk):
                keep = [t for t, (s, e) in enumerate(encoded[i].offsets) if e > s]
                out[i] = ([encoded[i].offsets[t] for t in keep], hidden[row, keep])
    return out


def align(en_vectors: np.ndarray, zh_vectors: np.ndarray) -> set[tuple[int, int]]:
    """SimAlign argmax: (i, j) where j is i's most similar token and i is j's."""
    if not len(en_vectors) or not len(zh_vectors):
        return set()
    sim = en_vectors @ zh_vectors.T
    forward, backward = sim.argmax(1), sim.argmax(0)
    return {(i, int(j)) for i, j in enumerate(forward) if backward[j] == i}


def aligned_span(en: tuple[list, np.ndarray], zh: tuple[list, np.ndarray], start: int, end: int,
                 links: set[tuple[int, int]]) -> tuple[int, int] | None:
    """The Chinese character hull of the tokens aligned to the English span [start, end)."""
    en_tokens = [i for i, (s, e) in enumerate(en[0]) if s < end and e > start]
    hit = sorted({j for i, j in links if i in en_tokens})
    if not hit and en_tokens and len(zh[1]):  # no mutual link: each English token's best match
        sim = en[1][en_tokens] @ zh[1].T
        hit = sorted({int(j) for j in sim.argmax(1)})
    if not hit:
        return None
    return zh[0][hit[0]][0], zh[0][hit[-1]][1]


def _kb_span(predicate: str, en_object: str, zh: str) -> tuple[str | None, tuple[int, int] | None]:
    """The entity the English object links to, and its Chinese label's place in `zh` (if there)."""
    import linkers

    try:
        linked = linkers.link_object(en_object, predicate=predicate, lang="en")
    except ValueError:
        return None, None
    qid = getattr(linked, "qid", None)
    if not qid:
        return None, None
    kb = linkers.get_kb()
    i = kb.idx(qid)
    label = kb.label_zh[i] if i is not None else ""
    where = zh.find(label) if label else -1
    return qid, ((where, where + len(label)) if where >= 0 else None)


def _same_entity(predicate: str, qid: str | None, surface: str) -> bool:
    import linkers

    if not qid or not surface:
        return False
    try:
        return getattr(linkers.link_object(surface, predicate=predicate, lang="zh"), "qid", None) == qid
    except ValueError:
        return False


def _same_literal(predicate: str, en_object: str, surface: str) -> bool:
    from engine.eval.extraction import literal_value

    value = literal_value(predicate, en_object)
    return value is not None and literal_value(predicate, surface) == value


def project_fact(predicate: str, en_object: str, en_span: tuple[int, int], zh_text: str,
                 en_tokens: tuple[list, np.ndarray], zh_tokens: tuple[list, np.ndarray]) -> ProjectedSpan | None:
    """One English fact's span in the Chinese sentence, with how it was found."""
    links = align(en_tokens[1], zh_tokens[1])
    hull = aligned_span(en_tokens, zh_tokens, *en_span, links)
    qid, kb_hit = _kb_span(predicate, en_object, zh_text)
    if kb_hit is not None:
        overlaps = hull is not None and hull[0] < kb_hit[1] and hull[1] > kb_hit[0]
        start, end = kb_hit
        method = "align+kb" if overlaps else "kb"
    elif hull is not None:
        start, end = clean_zh(zh_text, *snap_words(zh_text, *hull))
        surface = zh_text[start:end]
        checked = _same_entity(predicate, qid, surface) or _same_literal(predicate, en_object, surface)
        method = "align+kb" if checked else "align"
    else:
        return None
    if end <= start:
        return None
    return ProjectedSpan(start=start, end=end, predicate=predicate, text=zh_text[start:end], method=method)


EnglishFacts = list[tuple[str, str, tuple[int, int]]]  # (predicate, object, span in the English text)


def gold_labels(data_dir: Path) -> dict[str, tuple[str, EnglishFacts]]:
    """PersonaExt by folded sentence: (its sentence, its schema facts with spans)."""
    out: dict[str, tuple[str, EnglishFacts]] = {}
    for row in read_personaext(data_dir):
        sentence, facts = out.setdefault(fold(row.sentence), (row.sentence, []))
        predicates = RELATION_MAP.get(row.relation)
        if predicates:
            fact = (TRAIN_PREDICATE.get(row.relation, predicates[0]), row.object, row.object_span())
            if fact not in facts:
                facts.append(fact)
    return out


def teacher_labels(extractor: Any, sentences: Sequence[str]) -> dict[str, EnglishFacts]:
    """The English tagger's kept facts per sentence, each with its object's place in the sentence."""
    results = extractor.extract_batch(list(sentences), ["en"] * len(sentences))
    out: dict[str, EnglishFacts] = {}
    for sentence, result in zip(sentences, results, strict=True):
        facts = []
        for f in result.facts:
            where = sentence.lower().find(f.object.lower())
            if where >= 0:
                facts.append((f.predicate, f.object, (where, where + len(f.object))))
        out[sentence] = facts
    return out


def project_pairs(pairs: Sequence[SentencePair], data_dir: Path, base: Any, teacher: Any,
                  progress: Callable[[str], None] = print) -> list[ProjectedRow]:
    """Labelled Chinese rows: PersonaExt-matched utterances and teacher-labelled persona sentences."""
    gold = gold_labels(data_dir)
    persona = sorted({p.en for p in pairs if p.kind == "persona" and fold(p.en) not in gold})
    taught = teacher_labels(teacher, persona)
    progress(f"{len(pairs)} pairs; teacher labelled {len(persona)} persona sentences")
    chosen: list[tuple[SentencePair, str, str, EnglishFacts]] = []
    for pair in pairs:
        if fold(pair.en) in gold:
            en_text, facts = gold[fold(pair.en)]
            chosen.append((pair, en_text, "personaext", facts))
        elif pair.kind == "persona" and taught.get(pair.en):
            chosen.append((pair, pair.en, "teacher", taught[pair.en]))
    vectors = token_vectors(base, [c[1] for c in chosen] + [c[0].zh for c in chosen])
    rows, seen = [], set()
    for k, (pair, en_text, source, facts) in enumerate(chosen):
        en_tokens, zh_tokens = vectors[k], vectors[len(chosen) + k]
        spans = [project_fact(p, o, span, pair.zh, en_tokens, zh_tokens) for p, o, span in facts]
        if not all(spans) or pair.zh in seen:
            continue  # an object that could not be placed would teach the tagger it is no fact
        seen.add(pair.zh)
        rows.append(ProjectedRow(zh=pair.zh, en=en_text, key=en_text, source=source, kind=pair.kind,
                                 en_facts=[(p, o) for p, o, _ in facts], spans=[s for s in spans if s]))
    progress(f"{len(rows)} projected rows")
    return rows
