"""Custom Presidio recognizers for identifiers the stock set misses or handles only in English.

Every pattern uses digit look-arounds instead of ``\\b``: in Python's Unicode regexes a CJK
character is a word character, so ``\\b`` never fires between "电话" and "13812345678".
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import tldextract
from presidio_analyzer import Pattern, PatternRecognizer
from presidio_analyzer.predefined_recognizers import EmailRecognizer

# GB 11643-1999 check digit weights and the check-character table.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# URL query keys and path words that carry someone's identity or a secret.
_PERSONAL_URL_KEYS = frozenset(
    {
        "token", "access_token", "auth", "key", "api_key", "apikey", "session", "sessionid", "sid",
        "user", "userid", "user_id", "uid", "email", "mail", "phone", "tel", "name", "id",
        "account", "acct", "password", "pwd", "pass", "code", "ticket", "sig", "signature",
        "invite", "ref", "referral", "order", "orderid", "order_id",
    }
)
_PERSONAL_PATH_WORDS = frozenset(
    {"user", "users", "u", "profile", "profiles", "account", "accounts", "member", "people",
     "reset", "invite", "share", "order", "orders", "track", "tracking"}
)
_TOKENISH = re.compile(r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_\-]{12,}$|^\d{6,}$")


# The stock EmailRecognizer calls tldextract.extract(), which fetches the Public Suffix List
# from the internet on first use. This extractor only reads the snapshot bundled in the wheel.
_OFFLINE_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email recognizer with its domain check kept offline."""

    def validate_result(self, pattern_text: str) -> bool:
        return _OFFLINE_TLD(pattern_text).fqdn != ""


def luhn_ok(digits: str) -> bool:
    """Luhn (mod 10) checksum used by payment and most UnionPay bank cards."""
    nums = [int(c) for c in digits if c.isdigit()]
    if len(nums) < 12:
        return False
    total = 0
    for i, d in enumerate(reversed(nums)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def cn_resident_id_ok(raw: str) -> bool:
    """Check an 18-character PRC resident identity number: date of birth and ISO 7064 check digit."""
    text = raw.upper()
    if len(text) != 18 or not text[:17].isdigit():
        return False
    month, day = int(text[10:12]), int(text[12:14])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return False
    total = sum(int(c) * w for c, w in zip(text[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == text[17]


def url_is_personal(url: str) -> bool:
    """True when a URL carries a personal or secret token (query keys, user paths, long ids)."""
    candidate = url if "://" in url else "http://" + url
    try:
        parts = urlsplit(candidate)
    except ValueError:
        return True  # unparsable: err on the side of redaction
    if parts.username or parts.password:
        return True
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() in _PERSONAL_URL_KEYS or _TOKENISH.match(value):
            return True
    if parts.fragment and ("=" in parts.fragment or _TOKENISH.match(parts.fragment)):
        return True
    segments = [s for s in parts.path.split("/") if s]
    if any(s.lower() in _PERSONAL_PATH_WORDS for s in segments):
        return True
    return any(_TOKENISH.match(s) or s.startswith("@") for s in segments)


class CnMobileRecognizer(PatternRecognizer):
    """Mainland China mobile numbers: 1[3-9]x xxxx xxxx, optional +86, spaces or dashes."""

    PATTERNS = [
        Pattern(
            "cn_mobile",
            r"(?<![\d\w.+-])(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d{4}){2}(?!\d)",
            0.85,
        ),
        # Without the leading-character guard, for numbers glued to CJK text ("电话13812345678").
        Pattern("cn_mobile_cjk", r"(?<=[\u3000-\u9fff\uff00-\uffef])1[3-9]\d{9}(?!\d)", 0.85),
    ]

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(
            supported_entity="CN_MOBILE",
            patterns=self.PATTERNS,
            context=["手机", "电话", "联系", "mobile", "phone", "tel", "móvil", "teléfono"],
            supported_language=supported_language,
        )


class CnResidentIdRecognizer(PatternRecognizer):
    """PRC resident identity numbers (18 characters) with the GB 11643 check digit."""

    PATTERNS = [Pattern("cn_resident_id", r"(?<!\d)[1-9]\d{5}(?:18|19|20)\d{9}[\dXx](?![\dA-Za-z])", 0.6)]

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(
            supported_entity="CN_RESIDENT_ID",
            patterns=self.PATTERNS,
            context=["身份证", "证件", "id", "identity", "dni"],
            supported_language=supported_language,
        )

    def validate_result(self, pattern_text: str) -> bool:
        return cn_resident_id_ok(pattern_text)


class BankCardRecognizer(PatternRecognizer):
    """Bank and payment cards (12–19 digits, optional space/dash groups) that pass Luhn.

    The stock CreditCardRecognizer only knows a few issuer prefixes; UnionPay (62…) debit cards
    of 16–19 digits are common in Chinese text.
    """

    PATTERNS = [
        Pattern("bank_card_grouped", r"(?<!\d)\d{4}(?:[ -]\d{4}){2,3}(?:[ -]\d{1,3})?(?!\d)", 0.5),
        Pattern("bank_card_plain", r"(?<!\d)\d{12,19}(?!\d)", 0.4),
    ]

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(
            supported_entity="BANK_CARD",
            patterns=self.PATTERNS,
            context=["card", "卡号", "银行卡", "信用卡", "tarjeta", "visa", "mastercard"],
            supported_language=supported_language,
        )

    def validate_result(self, pattern_text: str) -> bool:
        return luhn_ok(pattern_text)


class PersonalUrlRecognizer(PatternRecognizer):
    """URLs that carry a personal token; plain site names ("amazon.com") are kept as signal."""

    PATTERNS = [
        Pattern(
            "url",
            r"(?:(?:https?|ftp)://|www\.)[^\s<>\"'，。！？、）》]+"
            r"|(?<![@\w.])[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?:com|net|org|io|cn|es|mx|co|me|app)"
            r"/[^\s<>\"'，。！？、）》]+",
            0.6,
        )
    ]

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(
            supported_entity="PERSONAL_URL",
            patterns=self.PATTERNS,
            supported_language=supported_language,
        )

    def validate_result(self, pattern_text: str) -> bool:
        return url_is_personal(pattern_text.rstrip(".,;:!?)"))


def custom_recognizers(language: str) -> list[PatternRecognizer]:
    """All project recognizers for one language (Presidio binds recognizers to a language)."""
    return [
        CnMobileRecognizer(language),
        CnResidentIdRecognizer(language),
        BankCardRecognizer(language),
        PersonalUrlRecognizer(language),
    ]
