"""Extractor validation, grounding, repair, alerts, cache and the bundled-model join."""

from __future__ import annotations

import hashlib
import json

import pytest

from engine.extract import ExtractionCache, Extractor, ExtractorConfig, cache_key, model_files
from engine.extract.alerts import AlertMatcher, EscalationRule, EscalationRules, get_alert_matcher
from engine.extract.extractor import short_reason, split_windows
from engine.extract.postprocess import (
    AnswerError,
    ModelAnswer,
    fact_confidences,
    ground_facts,
    label_confidence,
    parse_answer,
)
from engine.extract.schema import model_json_schema, model_predicates
from engine.extract.types import Completion, TokenLogprob
from graph_schema import fact_predicates


def answer(*facts: tuple[str, str], label: str = "neutral") -> ModelAnswer:
    return ModelAnswer.model_validate(
        {"facts": [{"predicate": p, "object": o} for p, o in facts], "reason": "r", "sentiment": label}
    )


# --- schema -----------------------------------------------------------------------------


def test_schema_derives_from_graph_schema():
    names = model_predicates()
    assert names == [p.name for p in fact_predicates()]
    assert "HEALTH_CONDITION" not in names and "PURCHASED" not in names
    assert "HEALTH_CONDITION" in model_predicates(allow_sensitive=True)
    schema = model_json_schema()
    assert schema["properties"]["facts"]["items"]["properties"]["predicate"]["enum"] == names
    assert schema["required"] == ["facts", "reason", "sentiment"]


# --- parsing ----------------------------------------------------------------------------


def test_parse_answer_accepts_valid_json():
    parsed = parse_answer(
        '{"facts": [{"predicate": "LIKES", "object": "tea"}], "reason": "x", "sentiment": "Positive"}'
    )
    assert parsed.sentiment == "positive" and parsed.facts[0].object == "tea"


@pytest.mark.parametrize(
    "raw",
    ['{"facts": [', "not json", "[1, 2]", '{"facts": [], "reason": "x", "sentiment": "angry"}'],
)
def test_parse_answer_rejects_invalid(raw):
    with pytest.raises(AnswerError):
        parse_answer(raw)


# --- grounding --------------------------------------------------------------------------


def test_grounding_keeps_facts_with_evidence_in_text():
    text = "I moved last year. I live in Berlin now and I love hiking!"
    facts, dropped = ground_facts(answer(("LIVES_IN", "berlin"), ("LIKES", "hiking")), text, "en")
    assert [(f.predicate, f.object) for f in facts] == [("LIVES_IN", "Berlin"), ("LIKES", "hiking")]
    assert facts[0].evidence == "I live in Berlin now and I love hiking!"
    assert facts[0].evidence in text
    assert facts[1].sentiment == pytest.approx(0.8)
    assert not dropped


def test_grounding_drops_and_counts():
    text = "I am a girl from Lyon. My brother loves football more than anything. Call <PHONE>."
    proposed = answer(
        ("LIVES_IN", "Paris"),  # not in the text
        ("FLIES_TO", "Lyon"),  # unknown predicate
        ("GENDER", "girl"),  # literal → female
        ("MARITAL_STATUS", "girl"),  # invalid literal
        ("HEALTH_CONDITION", "Lyon"),  # sensitive, refused by default
        ("LIKES", "<PHONE>"),  # placeholder
        ("LIKES", "football"),  # the brother's, not the author's
        ("LIKES", "unknown"),
    )
    facts, dropped = ground_facts(proposed, text, "en")
    assert [(f.predicate, f.object) for f in facts] == [("GENDER", "female")]
    assert dropped == {
        "object_not_in_text": 1,
        "unknown_predicate": 1,
        "invalid_literal": 1,
        "sensitive_refused": 1,
        "placeholder_object": 1,
        "not_about_author": 1,
        "empty_object": 1,
    }


def test_likes_a_diet_value_is_a_diet_fact():
    proposed = answer(("LIKES", "vegetarian"), ("LIKES", "vegan food"))
    facts, _ = ground_facts(proposed, "I'm vegetarian. I like vegan food.", "en")
    assert [(f.predicate, f.object) for f in facts] == [("DIET", "vegetarian"), ("LIKES", "vegan food")]


def test_sensitive_allowed_when_configured():
    facts, _ = ground_facts(answer(("HEALTH_CONDITION", "diabetic")), "I am diabetic.", "en", allow_sensitive=True)
    assert facts[0].predicate == "HEALTH_CONDITION"


def test_chinese_and_spanish_grounding_and_literals():
    facts, _ = ground_facts(answer(("WORKS_AS", "护士"), ("MARITAL_STATUS", "已婚")), "我是一名护士，已婚。", "zh")
    assert [(f.predicate, f.object) for f in facts] == [("WORKS_AS", "护士"), ("MARITAL_STATUS", "married")]
    facts, _ = ground_facts(answer(("HAS_FAMILY", "dos hijas")), "Tengo dos hijas.", "es")
    assert facts[0].object == "daughter"


def test_low_confidence_dropped():
    facts, dropped = ground_facts(
        answer(("LIKES", "tea")), "I like tea.", "en", confidences=[0.1], min_confidence=0.3
    )
    assert not facts and dropped == {"low_confidence": 1}


def test_confidence_from_token_logprobs():
    raw = '{"facts": [{"predicate": "LIKES", "object": "tea"}], "reason": "r", "sentiment": "positive"}'
    cut = raw.index("LIKES")
    tokens = [
        TokenLogprob(text=raw[:cut], logprob=0.0),
        TokenLogprob(text="LIKES", logprob=-0.1),
        TokenLogprob(text=raw[cut + 5 : raw.index("tea")], logprob=0.0),
        TokenLogprob(text="tea", logprob=-0.2),
    ]
    rest = raw[raw.index("tea") + 3 : raw.index("positive")]
    tokens += [
        TokenLogprob(text=rest, logprob=0.0),
        TokenLogprob(text="positive", logprob=-0.05, top={"positive": -0.05, "negative": -3.0, "neutral": -4.0}),
        TokenLogprob(text='"}', logprob=0.0),
    ]
    (conf,) = fact_confidences(raw, tokens)
    assert conf == pytest.approx(pytest.approx(2.718281828 ** -0.3, rel=1e-3))
    label = label_confidence(raw, tokens, "positive")
    assert 0.9 < label < 1.0


# --- extractor with scripted answers ------------------------------------------------------


class ScriptedBackend:
    """Returns pre-written answers in order. Used only to cause what the real, grammar-bound
    model cannot be made to do on demand: invalid JSON, schema violations, a failing server."""

    name = "scripted"
    model_id = "scripted"

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[list[dict[str, str]]] = []

    def complete(self, messages, schema, *, max_tokens):
        self.calls.append(messages)
        item = self.answers.pop(0)
        if isinstance(item, Exception):
            raise item
        return Completion(text=item, prompt_tokens=100, completion_tokens=20)


GOOD = json.dumps({"facts": [{"predicate": "LIVES_IN", "object": "Berlin"}], "reason": "moved", "sentiment": "neutral"})


def test_one_call_per_document_when_valid():
    backend = ScriptedBackend(GOOD)
    result = Extractor(backend).extract("I live in Berlin.", "en")
    assert result.llm_calls == 1 and result.valid_first_try and not result.repaired
    assert [(f.predicate, f.object) for f in result.facts] == [("LIVES_IN", "Berlin")]
    assert result.sentiment.label == "neutral" and result.sentiment.reason == "moved"


def test_invalid_json_is_repaired_once():
    backend = ScriptedBackend('{"facts": [{"predicate": "LIVES_IN"', GOOD)
    result = Extractor(backend).extract("I live in Berlin.", "en")
    assert result.llm_calls == 2 and result.repaired and not result.valid_first_try
    assert result.error is None and result.facts[0].object == "Berlin"
    repair_turn = backend.calls[1][-1]["content"]
    assert "invalid" in repair_turn and "JSON" in repair_turn


def test_invalid_twice_gives_clear_error():
    backend = ScriptedBackend("nope", '{"sentiment": "meh"}')
    result = Extractor(backend).extract("I live in Berlin.", "en")
    assert result.llm_calls == 2 and result.facts == []
    assert result.error and "after one repair" in result.error


def test_backend_failure_is_a_result_not_an_exception():
    from engine.extract import BackendError

    result = Extractor(ScriptedBackend(BackendError("connection refused"))).extract("I live in Berlin.", "en")
    assert result.error and "connection refused" in result.error


def test_empty_text_costs_no_call():
    backend = ScriptedBackend()
    result = Extractor(backend).extract("   ", "en")
    assert result.llm_calls == 0 and backend.calls == [] and result.notes


def test_long_text_is_windowed_and_says_so():
    text = "I live in Berlin. " * 3000  # 54,000 characters
    backend = ScriptedBackend(*[GOOD] * 8)
    result = Extractor(backend).extract(text, "en")
    assert result.llm_calls == 8
    assert any("chunked into 8" in n for n in result.notes)
    assert any(n.startswith("truncated") for n in result.notes)
    assert len(result.facts) == 1  # the same fact from every window, deduplicated


class ScriptedMany(ScriptedBackend):
    """A scripted backend that also answers several first calls at once, as llama.cpp and OpenAI-
    compatible backends do; records each batch."""

    def __init__(self, *answers: str | Exception) -> None:
        super().__init__(*answers)
        self.batches: list[int] = []

    def complete_many(self, requests):
        from engine.extract import BackendError

        self.batches.append(len(requests))
        out = []
        for messages, schema, max_tokens in requests:
            try:
                out.append(self.complete(messages, schema, max_tokens=max_tokens))
            except BackendError as exc:
                out.append(exc)
        return out


def test_extract_many_gives_each_text_what_extract_gives_it():
    from engine.extract import BackendError

    texts = ["I live in Berlin.", "   ", "I live in Berlin too.", "I live in Berlin, yes."]
    script = (GOOD, BackendError("server gone"), "nope", GOOD)  # the third is repaired once
    many = ScriptedMany(*script)
    together = Extractor(many).extract_many(texts, ["en"] * 4)
    one = ScriptedBackend(*script)
    alone = [Extractor(one).extract(t, "en") for t in texts]
    assert many.batches == [3]  # the first calls of the three non-empty texts in one batch
    assert [c[-1]["content"] for c in many.calls] == [c[-1]["content"] for c in one.calls]
    strip = {"seconds"}
    assert [r.model_dump(exclude=strip) for r in together] == [r.model_dump(exclude=strip) for r in alone]
    assert together[1].llm_calls == 0 and "server gone" in (together[2].error or "")
    assert together[3].repaired and together[3].facts[0].object == "Berlin"


def test_groups_of_parallel_decoding_fit_the_context_and_the_slots():
    from engine.extract.llama_parallel import common_prefix, plan_groups

    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2 and common_prefix([], [1]) == 0
    assert plan_groups([10] * 5, prefix=100, n_ctx=1000, n_slots=2, answer_budget=50) == [[0, 1], [2, 3], [4]]
    # each group holds the prefix once plus every member's own tokens and answer budget
    assert plan_groups([300, 300, 300, 10], prefix=100, n_ctx=800, n_slots=8, answer_budget=50) == [
        [0, 1], [2, 3]]
    assert plan_groups([5000], prefix=100, n_ctx=800, n_slots=8, answer_budget=50) == [[0]]  # alone, refused later
    assert plan_groups([], prefix=100, n_ctx=800, n_slots=8, answer_budget=50) == []


def test_split_windows_and_short_reason():
    windows, unread = split_windows("a. " * 100, 50, 3)
    assert len(windows) == 3 and all(len(w) <= 50 for w in windows) and unread == 300 - sum(map(len, windows))
    assert short_reason(" ".join(["word"] * 30)) == " ".join(["word"] * 12)
    long_zh = "送餐太慢了菜都凉了再也不点了这家店真的太差劲了吧"
    assert short_reason(long_zh) == long_zh[:20]


# --- alerts -----------------------------------------------------------------------------


def test_default_alert_rules_multilingual():
    matcher = get_alert_matcher()
    assert matcher.match("If this is not fixed I will sue you and call the police.") == ["lawsuit", "police"]
    assert matcher.match("再不退款我就去起诉，还要报警！") == ["lawsuit", "police"]
    assert matcher.match("Voy a poner una denuncia y pedir un contracargo.") == ["police", "chargeback"]
    assert matcher.match("我要投诉你们") == ["complaint"]
    assert matcher.match("There is an issue with the pursuit of happiness.") == []


def test_alert_rules_are_configurable(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - name: churn\n    terms: [cancel my subscription, 退订]\n")
    from engine.extract.alerts import load_rules

    matcher = AlertMatcher(load_rules(path))
    assert matcher.match("I want to CANCEL my   subscription") == ["churn"]
    assert matcher.match("我要退订") == ["churn"]
    rules = EscalationRules(rules=[EscalationRule(name="x", terms=["y"])])
    assert AlertMatcher(rules).match("y") == ["x"]


def test_alerts_in_extraction_result():
    result = Extractor(ScriptedBackend(GOOD)).extract("I live in Berlin and I will file a chargeback.", "en")
    assert result.sentiment.alerts == ["chargeback"]


# --- cache ------------------------------------------------------------------------------


def test_cache_roundtrip(tmp_path):
    cache = ExtractionCache(tmp_path / "c.sqlite")
    result = Extractor(ScriptedBackend(GOOD)).extract("I live in Berlin.", "en")
    key = cache_key("I live in Berlin.", "en", "v1")
    assert cache.get(key) is None
    cache.put(key, result)
    assert cache.get(key) == result and len(cache) == 1
    assert cache_key("I live in Berlin.", "en", "v2") != key


def test_extractor_version_changes_with_config():
    a = Extractor(ScriptedBackend()).version
    b = Extractor(ScriptedBackend(), ExtractorConfig(min_confidence=0.9)).version
    assert a != b


# --- bundled model join -------------------------------------------------------------------


def test_model_parts_are_joined_atomically_and_verified(tmp_path, monkeypatch):
    parts = []
    for i, chunk in enumerate([b"GGUF", b"-part-two", b"-three"]):
        path = tmp_path / f"part{i:02d}.bin"
        path.write_bytes(chunk)
        parts.append(path)
    digest = hashlib.sha256(b"GGUF-part-two-three").hexdigest()
    monkeypatch.setattr(model_files, "part_paths", lambda: parts)
    monkeypatch.setattr(model_files, "MODEL_SHA256", digest)
    target = model_files.ensure_model(tmp_path / "models")
    assert target.read_bytes() == b"GGUF-part-two-three"
    assert model_files.ensure_model(tmp_path / "models") == target  # second call: no rejoin
    monkeypatch.setattr(model_files, "MODEL_SHA256", "0" * 64)
    with pytest.raises(model_files.ModelFilesError):
        model_files.ensure_model(tmp_path / "other")
    assert list((tmp_path / "other").iterdir()) == []  # no half-written file left behind


def test_model_cache_is_one_setting_shared_by_every_home(tmp_path):
    from engine.config import Settings

    one, two = Settings.from_env({"PERSONA_HOME": "a"}), Settings.from_env({"PERSONA_HOME": "b"})
    assert one.model_cache == two.model_cache == model_files.models_dir()
    assert Settings.from_env({"PERSONA_MODEL_CACHE": str(tmp_path)}).model_cache == tmp_path
