"""Fact confidences calibrated per language on dev: a language whose raw confidences mean less (zh,
little training data) gets its own Platt scaling and threshold; a language without a dev set uses
the pooled ones."""

from __future__ import annotations

from engine.eval.extraction import GoldFact, GoldItem
from engine.extract.encoder.weights import Calibration, LanguagePolicy, TaskMeta
from engine.train.calibrate import ece
from engine.train.tasks import DevSet, calibrate_facts, calibration_pairs


def _dev_set(name: str, lang: str, right_share: tuple[float, float], n: int = 200) -> tuple[DevSet, list]:
    """n one-fact items, half predicted with raw confidence 0.95 and half with 0.7; of each half the
    first right_share are right."""
    items = [GoldItem(text=f"{name} {i}", lang=lang, relation="LIKES",
                      gold=[GoldFact(predicates=["LIKES"], object=f"thing{i}")]) for i in range(n)]
    half = n // 2
    preds = []
    for i in range(n):
        raw, share, k = (0.95, right_share[0], i) if i < half else (0.7, right_share[1], i - half)
        preds.append([("LIKES", f"thing{i}" if k < share * half else "other", raw)])
    return DevSet(name=name, items=items), preds


def test_each_language_gets_its_own_calibration_and_threshold_others_the_pooled_one() -> None:
    en, en_preds = _dev_set("personaext", "en", (0.9, 0.4))
    zh, zh_preds = _dev_set("xpersona-zh", "zh", (0.4, 0.1))
    meta = TaskMeta(task="facts", shape={}, labels=[])
    meta, dev = calibrate_facts({"personaext": en_preds, "xpersona-zh": zh_preds}, [en, zh], meta)
    assert abs(meta.calibration_for("en").apply(0.95) - 0.9) < 0.02
    assert abs(meta.calibration_for("zh").apply(0.95) - 0.4) < 0.02
    assert abs(meta.calibration_for("es").apply(0.95) - 0.65) < 0.02  # pooled
    # zh keeps its surer facts: an English-sized threshold would drop every one of them
    assert meta.threshold("min_confidence", "zh", 1.0) <= 0.4
    # P ≥ 0.75 on PersonaExt: only the surer half
    assert meta.threshold("min_confidence", "en", 0.0) > meta.calibration_for("en").apply(0.7)
    assert dev["xpersona-zh"]["recall"] >= 0.2 and dev["personaext"]["precision"] >= 0.75
    assert dev["xpersona-zh"]["ece"] < 0.02 and dev["personaext"]["ece"] < 0.02
    assert set(dev["thresholds"]) == {"en", "zh"}
    pooled = [[(p, o, meta.calibration.apply(c)) for p, o, c in row] for row in zh_preds]
    assert ece(*calibration_pairs(pooled, zh.items)) > 0.2  # what one pooled calibration would do to zh


def test_a_meta_without_languages_reads_as_before() -> None:
    meta = TaskMeta(task="facts", shape={}, labels=[], calibration=Calibration(kind="platt", a=1.0, b=0.0),
                    thresholds={"min_confidence": 0.5})
    assert meta.calibration_for("zh") is meta.calibration
    assert meta.threshold("min_confidence", "zh", 0.9) == 0.5
    assert meta.threshold("unsure_from", "zh", 0.2) == 0.2
    zh = meta.model_copy(update={"by_lang": {"zh": LanguagePolicy(calibration=Calibration(kind="none"),
                                                                  thresholds={"min_confidence": 0.3})}})
    assert zh.threshold("min_confidence", "zh", 0.9) == 0.3
    assert zh.threshold("unsure_from", "zh", 0.2) == 0.2  # not set for zh: the pooled value, else the default
