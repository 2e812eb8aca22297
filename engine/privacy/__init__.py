"""PII redaction before any model sees user text (Presidio + project recognizers)."""

from engine.privacy.recognizers import cn_resident_id_ok, luhn_ok, url_is_personal
from engine.privacy.redactor import (
    PLACEHOLDERS,
    RedactionResult,
    Redactor,
    RedactorConfig,
    get_redactor,
)

__all__ = [
    "PLACEHOLDERS",
    "RedactionResult",
    "Redactor",
    "RedactorConfig",
    "cn_resident_id_ok",
    "get_redactor",
    "luhn_ok",
    "url_is_personal",
]
