"""Turn the model's JSON answer into validated, grounded facts and a document sentiment.

Everything here is deterministic code: the model proposes, this module disposes. A proposed fact
is kept only when its predicate is known and allowed, its object is found in the redacted text
(that span's sentence becomes the evidence), the span is a thing in whole words (`spans.py`),
literal values normalise, and the sentence speaks in the first person. Every drop is counted by reason.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator
from rapidfuzz import fuzz

from engine.contracts import Fact
from engine.extract.spans import object_span
from engine.extract.types import TokenLogprob
from graph_schema import (
    LiteralError,
    Target,
    UnknownPredicateError,
    get_predicate,
    normalise_literal,
)

MAX_EVIDENCE_CHARS = 300
_PLACEHOLDER = re.compile(r"^<[A-Z_]+>$")
_EMPTY_OBJECTS = frozenset(
    {"none", "unknown", "n/a", "na", "null", "nothing", "no", "无", "没有", "未知", "ninguno", "nada"}
)
_SENTENCE_END = re.compile(r"[.!?;。！？；\n]+")
# First-person cues: a fact whose sentence (and, for fragments, its neighbours) has none is not
# about the author. Possessives ("my", "mi") alone do not count: "my brother loves football" is
# about the brother; they count only right before the object ("my dog") or with "favourite".
_FIRST_PERSON = {
    "en": re.compile(
        r"(?<![a-z'])(i|i'm|im|i've|ive|i'd|i'll|me|mine|myself|we|we're|us|"
        r"my\s+(?:favou?rite|fav)|our\s+(?:favou?rite|fav))(?![a-z'])",
        re.I,
    ),
    "zh": re.compile(r"[我咱俺]"),
    "es": re.compile(
        r"(?<![a-záéíóúñ])(yo|me|mí|conmigo|nosotros|nosotras|soy|estoy|tengo|vivo|trabajo|"
        r"estudio|quiero|odio|amo|adoro|uso|hablo|como|prefiero|necesito|busco|compré|he|"
        r"mis?\s+(?:favorit[oa]s?|preferid[oa]s?))(?![a-záéíóúñ])",
        re.I,
    ),
}
_POSSESSIVE_BEFORE = {
    "en": re.compile(r"(?<![a-z])(my|our)\s+(?:\S+\s+)?$", re.I),
    "es": re.compile(r"(?<![a-záéíóúñ])(mi|mis|nuestr[oa]s?)\s+(?:\S+\s+)?$", re.I),
}
# Words the model tends to emit for literal predicates that normalise_literal does not know yet.
# Applied before normalise_literal; plurals and a few common variants only.
_LITERAL_PRE: dict[str, dict[str, str]] = {
    "family_member": {
        "sons": "son", "daughters": "daughter", "brothers": "brother", "sisters": "sister",
        "siblings": "sibling", "parents": "parent", "grandparents": "grandparent",
        "grandchildren": "grandchild", "grandkids": "grandchild", "cousins": "cousin",
        "aunts": "aunt", "uncles": "uncle", "child": "child", "hubby": "husband",
        "boyfriend": "partner", "girlfriend": "partner", "fiance": "partner", "fiancee": "partner",
        "孩子们": "child", "女朋友": "partner", "男朋友": "partner", "父母": "parent",
        "hermanos": "sibling", "hijas": "daughter", "padres": "parent", "novio": "partner",
        "novia": "partner", "abuelos": "grandparent", "primo": "cousin", "prima": "cousin",
        "tío": "uncle", "tía": "aunt", "姐妹": "sister", "兄弟": "brother", "妈": "mother",
        "爸": "father", "媳妇": "wife", "女儿们": "daughter",
    },
    "gender": {
        "guy": "male", "dude": "male", "lady": "female", "female": "female", "male": "male",
        "女生": "female", "女孩": "female", "男生": "male", "男孩": "male", "chica": "female",
        "chico": "male",
        # how Chinese speakers say it of themselves in chat (KvPI's gender words)
        "女人": "female", "女的": "female", "妹子": "female", "姑娘": "female", "小姐姐": "female",
        "女孩子": "female", "男人": "male", "男的": "male", "小伙": "male", "小伙子": "male",
        "帅哥": "male", "爷们": "male", "男孩子": "male",
    },
    "marital_status": {
        "husband": "married", "wife": "married", "newlywed": "married", "separated": "separated",
        "结婚": "married", "结婚了": "married",
    },
    "diet": {"vegetarian": "vegetarian", "veggie": "vegetarian", "plant based": "vegan"},
}
_LEADING_NOISE = re.compile(r"^(?:a|an|the|my|el|la|los|las|un|una|mi|mis)\s+", re.I)
_ADJECTIVE_NUMBER = re.compile(
    r"^(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|twin|older|younger|little|big|"
    r"baby|step)\s+",
    re.I,
)
# Fact sentiment follows from the predicate; other predicates take no stance.
_PREDICATE_SENTIMENT: dict[str, float] = {"LIKES": 0.8, "DISLIKES": -0.8, "WANTS": 0.5}


class AnswerError(ValueError):
    """The model's answer is not valid JSON or does not follow the schema."""


class ModelFact(BaseModel):
    predicate: str
    object: str

    @field_validator("object", mode="before")
    @classmethod
    def _to_text(cls, v: object) -> str:
        return v if isinstance(v, str) else str(v)


class ModelAnswer(BaseModel):
    facts: list[ModelFact] = Field(default_factory=list)
    reason: str = ""
    sentiment: Literal["positive", "negative", "neutral"]

    @field_validator("sentiment", mode="before")
    @classmethod
    def _label(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v


def parse_answer(raw: str) -> ModelAnswer:
    """Parse and validate; raises AnswerError with a short description for the repair turn."""
    text = raw.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnswerError(f"not valid JSON: {exc.msg} at char {exc.pos}") from None
    if not isinstance(data, dict):
        raise AnswerError("the answer must be a JSON object")
    try:
        return ModelAnswer.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise AnswerError(f"{where}: {first['msg']}") from None


class Span(BaseModel):
    start: int
    end: int


def find_span(text: str, obj: str) -> Span | None:
    """Where the object occurs in the text: exact, case-insensitive, then fuzzy for typos/plurals."""
    if not obj:
        return None
    idx = text.find(obj)
    if idx < 0:
        idx = text.lower().find(obj.lower())
    if idx >= 0:
        return Span(start=idx, end=idx + len(obj))
    squeezed = re.sub(r"\s+", " ", obj)
    match = re.search(r"\s+".join(re.escape(w) for w in squeezed.split(" ")), text, re.I)
    if match:
        return Span(start=match.start(), end=match.end())
    if len(obj) >= 4:
        aligned = fuzz.partial_ratio_alignment(obj.lower(), text.lower(), score_cutoff=88)
        if aligned is not None:
            return Span(start=aligned.dest_start, end=aligned.dest_end)
    return None


def _sentence_bounds(text: str, span: Span) -> tuple[int, int]:
    start = 0
    for m in _SENTENCE_END.finditer(text, 0, span.start):
        start = m.end()
    m = _SENTENCE_END.search(text, span.end)
    end = m.end() if m else len(text)
    return start, end


def evidence_for(text: str, span: Span) -> str:
    """The sentence holding the span, trimmed to MAX_EVIDENCE_CHARS around it."""
    start, end = _sentence_bounds(text, span)
    if end - start > MAX_EVIDENCE_CHARS:
        half = (MAX_EVIDENCE_CHARS - (span.end - span.start)) // 2
        start = max(start, span.start - max(half, 0))
        end = min(end, start + MAX_EVIDENCE_CHARS)
    return text[start:end].strip()


def about_author(text: str, span: Span, lang: str) -> bool:
    """A first-person cue in the span's sentence or, for short fragments, its neighbours."""
    cue = _FIRST_PERSON.get(lang)
    if cue is None:
        return True  # no cue list for this language: trust the prompt
    possessive = _POSSESSIVE_BEFORE.get(lang)
    if possessive is not None and possessive.search(text[max(0, span.start - 40) : span.start]):
        return True  # "my dog", "our two kids", "mis hijas"
    start, end = _sentence_bounds(text, span)
    if cue.search(text[start:end]):
        return True
    if len(text[start:end].split()) >= 6 and lang != "zh":
        return False  # a full sentence without a first-person cue is about someone else
    before = _SENTENCE_END.split(text[:start].rstrip())[-2:] if start else []
    after = _SENTENCE_END.split(text[end:], maxsplit=1)[:1]
    neighbours = " ".join(before + after)
    return bool(cue.search(neighbours))


def normalise_literal_object(kind: str, raw: str) -> str:
    """normalise_literal after stripping articles/numbers and mapping plurals and variants."""
    candidates = [raw, _LEADING_NOISE.sub("", raw)]
    candidates.append(_ADJECTIVE_NUMBER.sub("", candidates[-1]))
    words = raw.split()
    if len(words) > 1:  # "5 human children", "married mom": the head word or any word
        candidates += [words[-1], *words]
    pre = _LITERAL_PRE.get(kind, {})
    for cand in candidates:
        cand = cand.strip().strip(".,!?。！").strip()
        for form in (cand, pre.get(cand.lower(), "")):
            if not form:
                continue
            try:
                return normalise_literal(kind, form)
            except LiteralError:
                continue
    raise LiteralError(f"{raw!r} is not a valid {kind}")


def _clean_object(obj: str) -> str:
    return obj.strip().strip("\"'“”‘’「」『』,.;:!?，。；：！？").strip()


class FactConfidence(BaseModel):
    """Confidence per proposed fact, in the order the model wrote them (None: not available)."""

    values: list[float | None] = Field(default_factory=list)


def ground_facts(
    answer: ModelAnswer,
    text: str,
    lang: str,
    *,
    allow_sensitive: bool = False,
    confidences: Sequence[float | None] = (),
    min_confidence: float = 0.0,
    default_confidence: float = 0.7,
) -> tuple[list[Fact], Counter[str]]:
    """Keep the facts that survive every check; count the others by reason."""
    facts: list[Fact] = []
    dropped: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    for i, proposed in enumerate(answer.facts):
        conf = confidences[i] if i < len(confidences) else None
        outcome = _ground_one(proposed, text, lang, allow_sensitive)
        if isinstance(outcome, str):
            dropped[outcome] += 1
            continue
        fact = outcome
        fact.confidence = round(conf if conf is not None else default_confidence, 4)
        if fact.confidence < min_confidence:
            dropped["low_confidence"] += 1
            continue
        key = (fact.predicate, fact.object.lower())
        if key in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(key)
        facts.append(fact)
    for origin in origins_of(facts, text, lang):
        if (origin.predicate, origin.object.lower()) not in seen:
            facts.append(origin)
    return facts, dropped


# "i am from ohio", "soy de Sevilla", "来自上海": PersonaExt labels the place as where the author lives
# (live_in_*), other persona sets as where they come from; both are said, so both are kept, whichever
# of the two a tier proposed. "originally from" says the author lives elsewhere now.
_FROM_CUES = {
    "en": re.compile(r"(?<!originally )\bfrom\s+(?:the\s+)?$", re.I),
    "es": re.compile(r"\b(?:soy|somos|vengo|venimos)\s+(?:de|del)\s+(?:la\s+|el\s+|los\s+|las\s+)?$", re.I),
    "zh": re.compile(r"来自$"),
}
_COUNTERPART = {"LIVES_IN": "FROM_PLACE", "FROM_PLACE": "LIVES_IN"}


def origins_of(facts: Sequence[Fact], text: str, lang: str) -> list[Fact]:
    """For each LIVES_IN / FROM_PLACE fact whose place follows "from" ("soy de", "来自"), the other one."""
    cue = _FROM_CUES.get(lang)
    out: list[Fact] = []
    for fact in facts:
        span = find_span(text, fact.object) if cue and fact.predicate in _COUNTERPART else None
        if span is not None and cue.search(text, max(0, span.start - 24), span.start):
            out.append(fact.model_copy(update={"predicate": _COUNTERPART[fact.predicate]}))
    return out


def _retype_diet(pred, obj: str):
    """"I'm vegetarian" comes back as LIKES vegetarian from the small model: an object that is
    exactly a diet value (not "vegan food") is a DIET fact."""
    if pred.name != "LIKES":
        return pred
    try:
        normalise_literal("diet", obj)
    except LiteralError:
        return pred
    return get_predicate("DIET")


def _ground_one(proposed: ModelFact, text: str, lang: str, allow_sensitive: bool) -> Fact | str:
    """A Fact, or the reason it is dropped."""
    try:
        pred = get_predicate(proposed.predicate)
    except UnknownPredicateError:
        return "unknown_predicate"
    if pred.behaviour:
        return "unknown_predicate"
    if pred.sensitive and not allow_sensitive:
        return "sensitive_refused"
    obj = _clean_object(proposed.object)
    if not obj or obj.lower() in _EMPTY_OBJECTS:
        return "empty_object"
    pred = _retype_diet(pred, obj)
    if _PLACEHOLDER.match(obj) or "<" in obj and ">" in obj:
        return "placeholder_object"
    span = find_span(text, obj)
    if span is None:
        return "object_not_in_text"
    if not about_author(text, span, lang):
        return "not_about_author"
    if pred.target is Target.VALUE:
        try:
            value = normalise_literal_object(pred.literal_kind or "", obj)
        except LiteralError:
            return "invalid_literal"
    else:
        decision = object_span(text, span.start, span.end, _sentence_bounds(text, span), lang, pred)
        if decision.drop is not None:
            return decision.drop
        span = Span(start=decision.start, end=decision.end)
        value = text[span.start : span.end].strip()
    return Fact(
        predicate=pred.name,
        object=value,
        sentiment=_PREDICATE_SENTIMENT.get(pred.name),
        evidence=evidence_for(text, span),
    )


# --- confidence from token log-probabilities ------------------------------------------------

_FACT_RE = re.compile(
    r'"predicate"\s*:\s*"(?P<p>[^"]*)"\s*,\s*"object"\s*:\s*"(?P<o>(?:[^"\\]|\\.)*)"'
)
_LABEL_RE = re.compile(r'"sentiment"\s*:\s*"(?P<l>[a-z]+)"')


def _token_offsets(tokens: Sequence[TokenLogprob]) -> list[tuple[int, int]]:
    offsets, pos = [], 0
    for tok in tokens:
        offsets.append((pos, pos + len(tok.text)))
        pos += len(tok.text)
    return offsets


def _tokens_in(
    tokens: Sequence[TokenLogprob], offsets: list[tuple[int, int]], start: int, end: int
) -> list[TokenLogprob]:
    return [t for t, (a, b) in zip(tokens, offsets, strict=True) if a < end and b > start]


def fact_confidences(raw: str, tokens: Sequence[TokenLogprob] | None) -> list[float | None]:
    """Per fact: P(predicate tokens) × geometric-mean P(object tokens), from raw model logits.

    The predicate is the model's decision, so its joint probability counts in full; an object
    is copied text whose later tokens are near-certain, so a mean keeps length from dominating.
    """
    matches = list(_FACT_RE.finditer(raw))
    if not tokens or "".join(t.text for t in tokens) != raw[: sum(len(t.text) for t in tokens)]:
        return [None] * len(matches)
    offsets = _token_offsets(tokens)
    out: list[float | None] = []
    for m in matches:
        pred_toks = _tokens_in(tokens, offsets, *m.span("p"))
        obj_toks = _tokens_in(tokens, offsets, *m.span("o"))
        if not pred_toks or not obj_toks:
            out.append(None)
            continue
        p_pred = math.exp(sum(t.logprob for t in pred_toks))
        p_obj = math.exp(sum(t.logprob for t in obj_toks) / len(obj_toks))
        out.append(p_pred * p_obj)
    return out


def label_confidence(raw: str, tokens: Sequence[TokenLogprob] | None, label: str) -> float | None:
    """Probability of the chosen label among the three, from the label's first-token candidates."""
    m = _LABEL_RE.search(raw)
    if not tokens or m is None:
        return None
    offsets = _token_offsets(tokens)
    toks = _tokens_in(tokens, offsets, *m.span("l"))
    if not toks:
        return None
    first = toks[0]
    probs: dict[str, float] = {}
    for cand, lp in first.top.items():
        word = cand.strip().strip('"').lower()
        for name in ("positive", "negative", "neutral"):
            if word and name.startswith(word) and name not in probs:
                probs[name] = math.exp(lp)
    if label not in probs:
        return math.exp(first.logprob)
    total = sum(probs.values())
    return probs[label] / total if total > 0 else None
