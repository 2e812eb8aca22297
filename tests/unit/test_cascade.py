"""The cascade's decisions as pure functions: when a document goes to the LLM, and what of the LLM's
answer is kept. (The real encoder and LLM together: tests/llm/test_cascade_llm.py.)"""

from __future__ import annotations

from engine.contracts import DocumentSentiment, Fact
from engine.extract.cascade import CascadePolicy, escalation_reasons, merge
from engine.extract.types import ExtractionResult

SURE = DocumentSentiment(label="neutral", confidence=0.95)


def result(*facts: tuple[str, str], tier: str = "encoder",
           unsure: tuple[tuple[str, str], ...] = ()) -> ExtractionResult:
    return ExtractionResult(
        facts=[Fact(predicate=p, object=o, tier=tier) for p, o in facts],
        unsure=[Fact(predicate=p, object=o, confidence=0.3, tier=tier) for p, o in unsure],
        sentiment=SURE,
    )


def policy(**llm_predicates: tuple[str, ...]) -> CascadePolicy:
    return CascadePolicy(llm_predicates=llm_predicates)


def test_who_the_author_is_escalates_where_the_llm_adds_predicates() -> None:
    enc = result(("OWNS", "iPhone"))
    text = "I'm a software engineer in London and I own an iPhone."
    assert escalation_reasons(text, "en", enc, policy(en=("WORKS_AS",))) == ["blind"]
    assert escalation_reasons("Soy profesora y vivo en Sevilla.", "es", result(), policy(es=("WORKS_AS",))) == ["blind"]
    assert escalation_reasons("我是一名护士。", "zh", result(), policy(zh=("WORKS_AS",))) == ["blind"]
    # a language with no LLM predicates chosen, or a sentence that says nothing of who the author is
    assert escalation_reasons(text, "en", enc, policy(es=("WORKS_AS",))) == []
    assert escalation_reasons("I own an iPhone and I love it.", "en", enc, policy(en=("WORKS_AS",))) == []
    # a statement the encoder already explains needs no LLM
    vegan = result(("DIET", "vegan"))
    assert escalation_reasons("I am a vegan.", "en", vegan, policy(en=("WORKS_AS",))) == []
    assert escalation_reasons("I am a vegan. I'm a nurse.", "en", vegan, policy(en=("WORKS_AS",))) == ["blind"]
    nurse = "I'm a nurse and I own an iPhone."  # a fact further on says nothing about the statement
    assert escalation_reasons(nurse, "en", result(("OWNS", "iPhone")), policy(en=("WORKS_AS",))) == ["blind"]


def test_merge_adds_the_llms_facts_of_the_chosen_predicates_only() -> None:
    enc = result(("OWNS", "iPhone"))
    llm = result(("WORKS_AS", "software engineer"), ("LIVES_IN", "London"), ("OWNS", "iPhone"),
                 ("LIKES", "London"), tier="llm")
    merged = merge(enc, llm, ("WORKS_AS", "LIVES_IN"))
    assert [(f.predicate, f.object, f.tier) for f in merged.facts] == [
        ("OWNS", "iPhone", "encoder"), ("WORKS_AS", "software engineer", "llm"), ("LIVES_IN", "London", "llm")]
    # without chosen predicates only confirmed unsure spans come from the LLM, as before
    assert [f.object for f in merge(enc, llm).facts] == ["iPhone"]


def test_merge_keeps_the_encoders_word_for_an_object_it_states() -> None:
    enc = result(("FROM_PLACE", "London"), unsure=(("WORKS_AS", "engineer"),))
    llm = result(("LIVES_IN", "London"), ("WORKS_AS", "engineer"), tier="llm")
    merged = merge(enc, llm, ("LIVES_IN", "WORKS_AS"))
    assert [(f.predicate, f.object, f.tier) for f in merged.facts] == [
        ("FROM_PLACE", "London", "encoder"), ("WORKS_AS", "engineer", "llm")]
