"""Several documents decoded together by the real local model (llama_parallel.py): each document
gets its own answer (its facts, not a neighbour's), groups larger than the slots and prompts too
long for the context still get one outcome each, in order.

Assertions are on facts a person would not dispute, not on exact strings or confidences: decoded
together, a document's attention sums run over a differently laid out KV cache, so its logits can
differ from the one-at-a-time path in the last bits (benchmarks/tiers.py counts the documents whose
answers differ).
"""

from __future__ import annotations

import pytest

from engine.extract import BackendError, Extractor
from engine.extract.postprocess import parse_answer
from engine.extract.prompt import build_messages
from engine.extract.schema import model_json_schema

pytestmark = pytest.mark.llm

CASES = [  # (lang, text, predicate, object, sentiment or None)
    ("en", "I live in Berlin.", "LIVES_IN", "berlin", None),
    ("zh", "我最喜欢吃火锅。", "LIKES", "火锅", None),
    ("es", "Tengo un perro.", "HAS_PET", "perro", None),
    ("en", "I hate country music.", "DISLIKES", "country music", None),
    ("en", "I work as a nurse. Terrible service today, the food was cold.", "WORKS_AS", "nurse", "negative"),
]


def test_documents_decoded_together_each_get_their_own_facts(llama_backend) -> None:
    extractor = Extractor(llama_backend)
    results = extractor.extract_many([c[1] for c in CASES], [c[0] for c in CASES])
    assert len(results) == len(CASES)
    for (_lang, text, predicate, obj, label), result in zip(CASES, results, strict=True):
        got = [(f.predicate, f.object.lower()) for f in result.facts]
        assert any(p == predicate and obj in o for p, o in got), (text, got)
        assert all(f.evidence and f.evidence in text for f in result.facts), text  # no neighbour's facts
        assert result.llm_calls == 1 and result.error is None
        assert label is None or result.sentiment.label == label


def test_more_documents_than_slots_and_a_prompt_too_long(model_path) -> None:
    from engine.extract.llama_backend import LlamaCppBackend

    backend = LlamaCppBackend(model_path, parallel_slots=2, parallel_ctx=2048)
    schema = model_json_schema()
    too_long = "I live in Berlin. " * 600  # ~3,600 tokens: more than the 2,048-token context
    cases = CASES[:3]
    requests = [(build_messages(text), schema, 200) for _lang, text, *_ in cases]
    requests.insert(1, (build_messages(too_long), schema, 200))
    out = backend.complete_many(requests)
    assert len(out) == 4
    assert isinstance(out[1], BackendError) and "does not fit" in str(out[1])
    for (_lang, _text, _predicate, obj, _label), completion in zip(cases, (out[0], out[2], out[3]), strict=True):
        assert not isinstance(completion, BackendError)
        answer = parse_answer(completion.text)  # valid JSON of the schema, one per document
        assert any(obj in f.object.lower() for f in answer.facts), completion.text
        assert completion.logprobs and completion.completion_tokens > 0
