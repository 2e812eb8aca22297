"""Escalation rules (lawsuit, police, chargeback, 起诉, 报警, demanda, …) matched in code.

The rules live in a YAML file so operations can change them without a release; the defaults
ship next to this module. They run on the redacted text, after the model, and never depend on
what the model said.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, field_validator

DEFAULT_RULES_PATH = Path(__file__).with_name("escalation_rules.yaml")


class EscalationRule(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    terms: list[str] = Field(min_length=1)

    @field_validator("terms", mode="before")
    @classmethod
    def _as_text(cls, v: object) -> object:
        # YAML reads a bare 12315 as an int; a term is always text.
        return [str(t) for t in v] if isinstance(v, list) else v


class EscalationRules(BaseModel):
    rules: list[EscalationRule]


def _term_pattern(term: str) -> str:
    """Whole-word match for Latin-script terms, plain substring for CJK (no word spaces there)."""
    escaped = re.escape(term.strip()).replace(r"\ ", r"\s+")
    if re.search(r"[\u3000-\u9fff]", term):
        return escaped
    return rf"(?<![^\W_]){escaped}(?![^\W_])"


class AlertMatcher:
    """Compiled rules: ``match(text)`` → names of the rules that fired, in file order."""

    def __init__(self, rules: EscalationRules) -> None:
        self._compiled = [
            (rule.name, re.compile("|".join(_term_pattern(t) for t in rule.terms), re.IGNORECASE))
            for rule in rules.rules
        ]

    def match(self, text: str) -> list[str]:
        return [name for name, pattern in self._compiled if pattern.search(text)]

    def is_term(self, text: str) -> bool:
        """The whole text is one of the rules' terms ("投诉", "chargeback"), not merely contains one."""
        return any(pattern.fullmatch(text.strip()) for _, pattern in self._compiled)


def load_rules(path: str | Path | None = None) -> EscalationRules:
    """Rules from ``path``, else the shipped defaults (YAML or JSON)."""
    source = Path(path or DEFAULT_RULES_PATH)
    with source.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)  # JSON is valid YAML
    return EscalationRules.model_validate(data)


@lru_cache(maxsize=8)
def get_alert_matcher(path: str | None = None) -> AlertMatcher:
    return AlertMatcher(load_rules(path))
