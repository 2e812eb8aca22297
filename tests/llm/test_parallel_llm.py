"""Several documents decoded together by the real local model (llama_parallel.py): each document's
answer is the one it gets alone, groups larger than the slots and prompts too long for the context
still get one outcome each, in order."""

from __future__ import annotations

import pytest

from engine.extract import BackendError, Extractor
from engine.extract.prompt import build_messages
from engine.extract.schema import model_json_schema

pytestmark = pytest.mark.llm

TEXTS = [
    ("en", "I live in Berlin and I work as a nurse."),
    ("zh", "我是一名老师，最喜欢吃火锅。"),
    ("es", "Tengo un perro y vivo en Sevilla."),
    ("en", "Terrible service, the food was cold and nobody answered the phone."),
    ("en", "I'm a software engineer and I hate country music."),
]


def decided(result) -> tuple:  # noqa: ANN001 - an ExtractionResult
    """What the model decided for a document: facts, their confidence, the sentiment and its reason."""
    facts = sorted((f.predicate, f.object, round(f.confidence, 2)) for f in result.facts)
    return facts, result.sentiment.label, round(result.sentiment.confidence, 2), result.sentiment.reason


def test_documents_decoded_together_get_the_answers_they_get_alone(llama_backend) -> None:
    extractor = Extractor(llama_backend)
    texts, langs = [t for _, t in TEXTS], [lang for lang, _ in TEXTS]
    alone = [extractor.extract(t, lang) for t, lang in zip(texts, langs, strict=True)]
    together = extractor.extract_many(texts, langs)
    assert [decided(r) for r in together] == [decided(r) for r in alone]
    assert all(r.llm_calls == 1 and r.error is None for r in together)
    assert [r.completion_tokens for r in together] == [r.completion_tokens for r in alone]


def test_more_documents_than_slots_and_a_prompt_too_long(model_path) -> None:
    from engine.extract.llama_backend import LlamaCppBackend

    backend = LlamaCppBackend(model_path, parallel_slots=2, parallel_ctx=2048)
    schema = model_json_schema()
    too_long = "I live in Berlin. " * 600  # ~3,600 tokens: more than the 2,048-token context
    requests = [(build_messages(t), schema, 200) for _, t in TEXTS[:3]]
    requests.insert(1, (build_messages(too_long), schema, 200))
    out = backend.complete_many(requests)
    assert isinstance(out[1], BackendError) and "does not fit" in str(out[1])
    single = [backend.complete(m, s, max_tokens=n) for m, s, n in requests[:1] + requests[2:]]
    assert [c.text for c in (out[0], out[2], out[3])] == [c.text for c in single]
