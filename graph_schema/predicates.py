"""The persona ontology: every predicate the engine knows, with its typing and cardinality.

Everything that writes a relationship type or a label takes it from here, so this module is
also the whitelist that keeps user input out of Cypher identifiers.
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Target(StrEnum):
    """What a fact edge points at."""

    ENTITY = "Entity"
    VALUE = "Value"


class Predicate(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    target: Target = Target.ENTITY
    # Wikidata classes the object must reach through its P31/P279 closure; empty = anything.
    range_classes: tuple[str, ...] = ()
    # For Value targets: the literal kind (see LITERAL_KINDS).
    literal_kind: str | None = None
    # Used in NIL keys so repeated unknown objects of the same kind merge: nil:<nil_type>:<name>.
    nil_type: str = "thing"
    functional: bool = False
    supersedes: bool = False
    exclusive_with: tuple[str, ...] = ()
    sensitive: bool = False
    behaviour: bool = False
    domain: str = "User"


PLACE = (
    "Q2221906",  # geographic location
    "Q17334923",  # location
    "Q486972",  # human settlement
    "Q515",  # city
    "Q1549591",  # big city
    "Q5119",  # capital
    "Q6256",  # country
    "Q3624078",  # sovereign state
    "Q56061",  # administrative territorial entity
    "Q82794",  # geographic region
    "Q7275",  # state
    "Q107390",  # federated state
    "Q10864048",  # first-level administrative country subdivision
    "Q618123",  # geographical feature
)
OCCUPATION = (
    "Q12737077",  # occupation
    "Q28640",  # profession
    "Q4164871",  # position
    "Q192581",  # job
)
ORGANISATION = (
    "Q43229",  # organization
    "Q4830453",  # business
    "Q783794",  # company
    "Q891723",  # public company
    "Q6881511",  # enterprise
    "Q2385804",  # educational institution
    "Q327333",  # government agency
    "Q16917",  # hospital
)
EDUCATION = (
    "Q2385804",  # educational institution
    "Q3918",  # university
    "Q3914",  # school
    "Q189004",  # college
    "Q38723",  # higher education institution
)
ANIMAL = (
    "Q729",  # animal
    "Q39201",  # pet
    "Q622852",  # domesticated animal
    "Q16521",  # taxon
)
LANGUAGE = (
    "Q34770",  # language
    "Q315",  # language (human)
    "Q33742",  # natural language
    "Q20162172",  # human language
    "Q1288568",  # modern language
)

# Literal kinds with their allowed canonical values.
LITERAL_KINDS: dict[str, tuple[str, ...]] = {
    "age_band": ("under_18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"),
    "gender": ("female", "male", "non_binary"),
    "marital_status": (
        "single",
        "in_relationship",
        "engaged",
        "married",
        "divorced",
        "separated",
        "widowed",
    ),
    "diet": (
        "vegetarian",
        "vegan",
        "pescatarian",
        "halal",
        "kosher",
        "gluten_free",
        "lactose_free",
        "keto",
        "omnivore",
    ),
    "family_member": (
        "mother",
        "father",
        "parent",
        "son",
        "daughter",
        "child",
        "brother",
        "sister",
        "sibling",
        "husband",
        "wife",
        "spouse",
        "partner",
        "grandparent",
        "grandchild",
        "grandmother",
        "grandfather",
        "aunt",
        "uncle",
        "cousin",
        "none",
    ),
}


def _p(name: str, description: str, **kw: object) -> Predicate:
    return Predicate(name=name, description=description, **kw)  # type: ignore[arg-type]


PREDICATES: dict[str, Predicate] = {
    p.name: p
    for p in [
        _p("LIKES", "the author likes, enjoys or loves the object", exclusive_with=("DISLIKES",)),
        _p("DISLIKES", "the author dislikes, hates or avoids the object", exclusive_with=("LIKES",)),
        _p("OWNS", "the author owns or has bought the object", nil_type="product"),
        _p("USES", "the author uses the object (product, service, app)", nil_type="product"),
        _p("WANTS", "the author wants, plans or wishes to get or do the object"),
        _p(
            "LIVES_IN",
            "the place where the author currently lives",
            range_classes=PLACE,
            nil_type="place",
            functional=True,
            supersedes=True,
        ),
        _p("FROM_PLACE", "the place the author comes from", range_classes=PLACE, nil_type="place"),
        _p(
            "WORKS_AS",
            "the author's current occupation or job title",
            range_classes=OCCUPATION,
            nil_type="occupation",
            functional=True,
            supersedes=True,
        ),
        _p(
            "WORKS_AT",
            "the organisation the author currently works for",
            range_classes=ORGANISATION,
            nil_type="organisation",
            functional=True,
            supersedes=True,
        ),
        _p(
            "STUDIES_AT",
            "the school or university the author attends",
            range_classes=EDUCATION,
            nil_type="organisation",
            functional=True,
            supersedes=True,
        ),
        _p("HAS_PET", "an animal the author keeps as a pet", range_classes=ANIMAL, nil_type="animal"),
        _p(
            "HAS_FAMILY",
            "a family member of the author (role, not name)",
            target=Target.VALUE,
            literal_kind="family_member",
        ),
        _p("SPEAKS", "a language the author speaks", range_classes=LANGUAGE, nil_type="language"),
        _p(
            "AGE_BAND",
            "the author's age band",
            target=Target.VALUE,
            literal_kind="age_band",
            functional=True,
            supersedes=True,
        ),
        _p(
            "GENDER",
            "the author's gender",
            target=Target.VALUE,
            literal_kind="gender",
            functional=True,
            supersedes=True,
        ),
        _p(
            "MARITAL_STATUS",
            "the author's marital status",
            target=Target.VALUE,
            literal_kind="marital_status",
            functional=True,
            supersedes=True,
        ),
        _p("DIET", "a diet the author follows", target=Target.VALUE, literal_kind="diet"),
        # Special categories (GDPR art. 9): refused unless the config allows them.
        _p("HEALTH_CONDITION", "a health condition of the author", sensitive=True, nil_type="condition"),
        _p("RELIGION", "the author's religion", sensitive=True, nil_type="religion"),
        _p("POLITICAL_VIEW", "the author's political view or party", sensitive=True),
        _p("SEXUAL_ORIENTATION", "the author's sexual orientation", sensitive=True),
        # Behaviour, written from events rather than text.
        _p("PURCHASED", "the user bought the item", behaviour=True, nil_type="product"),
        _p("VIEWED", "the user viewed the item", behaviour=True, nil_type="product"),
    ]
}

# Wikidata context edges written with each linked entity (its ancestor closure from the KB).
CONTEXT_RELATIONS: tuple[str, ...] = ("INSTANCE_OF", "SUBCLASS_OF", "LOCATED_IN", "MANUFACTURER")
# Structural relationship types of the graph model.
STRUCTURAL_RELATIONS: tuple[str, ...] = ("ABOUT", "MEMBER_OF", "HAS_CONFLICT")
# ReviewBatch / ReviewItem / Judgement: the analysts' review loop (engine/review).
NODE_LABELS: tuple[str, ...] = (
    "User", "Entity", "Value", "Document", "Segment", "Conflict", "ReviewBatch", "ReviewItem", "Judgement",
)
# `rejected`: a reviewer judged the fact wrong (reversible, never deleted; like `quarantined` it is
# not active, so segments and rules skip it). `confirmed` is a separate flag, not a status.
FACT_STATUSES: tuple[str, ...] = ("active", "superseded", "quarantined", "rejected")


class UnknownPredicateError(ValueError):
    pass


def get_predicate(name: str) -> Predicate:
    """Look a predicate up by name (case-insensitive); raises UnknownPredicateError."""
    key = name.strip().upper() if isinstance(name, str) else ""
    try:
        return PREDICATES[key]
    except KeyError:
        raise UnknownPredicateError(
            f"unknown predicate {name!r}; known: {', '.join(sorted(PREDICATES))}"
        ) from None


def fact_predicates(*, allow_sensitive: bool = False, behaviour: bool = False) -> list[Predicate]:
    """Predicates that text extraction (or behaviour ingestion) may produce."""
    return [
        p
        for p in PREDICATES.values()
        if p.behaviour == behaviour and (allow_sensitive or not p.sensitive)
    ]


def relationship_types() -> tuple[str, ...]:
    """Every relationship type the engine may write: the Cypher identifier whitelist."""
    return tuple(PREDICATES) + CONTEXT_RELATIONS + STRUCTURAL_RELATIONS


def checked_identifier(name: str) -> str:
    """Return name if it is a whitelisted label or relationship type, else raise.

    Labels and types cannot be Cypher parameters, so everything spliced into a statement goes
    through here.
    """
    if name in NODE_LABELS or name in relationship_types():
        return name
    raise ValueError(f"{name!r} is not a whitelisted label or relationship type")


class LiteralError(ValueError):
    pass


LITERAL_SYNONYMS: dict[str, dict[str, str]] = {
    "gender": {
        "woman": "female", "girl": "female", "f": "female", "女": "female", "女性": "female",
        "mujer": "female", "femenino": "female", "man": "male", "boy": "male", "m": "male",
        "男": "male", "男性": "male", "hombre": "male", "masculino": "male",
        "nonbinary": "non_binary", "non-binary": "non_binary", "enby": "non_binary",
    },
    "marital_status": {
        "married": "married", "已婚": "married", "casado": "married", "casada": "married",
        "single": "single", "未婚": "single", "单身": "single", "soltero": "single",
        "soltera": "single", "divorced": "divorced", "离婚": "divorced", "离异": "divorced",
        "divorciado": "divorced", "divorciada": "divorced", "widowed": "widowed",
        "widow": "widowed", "widower": "widowed", "丧偶": "widowed", "viudo": "widowed",
        "viuda": "widowed", "engaged": "engaged", "订婚": "engaged", "prometido": "engaged",
        "prometida": "engaged", "dating": "in_relationship", "in a relationship": "in_relationship",
    },
    "diet": {
        "素食": "vegetarian", "吃素": "vegetarian", "vegetariano": "vegetarian",
        "vegetariana": "vegetarian", "纯素": "vegan", "vegano": "vegan", "vegana": "vegan",
        "gluten-free": "gluten_free", "gluten free": "gluten_free", "sin gluten": "gluten_free",
        "lactose-free": "lactose_free", "lactose free": "lactose_free", "清真": "halal",
    },
    "family_member": {
        "mom": "mother", "mum": "mother", "妈妈": "mother", "母亲": "mother", "madre": "mother",
        "mamá": "mother", "dad": "father", "爸爸": "father", "父亲": "father", "padre": "father",
        "papá": "father", "儿子": "son", "hijo": "son", "女儿": "daughter", "hija": "daughter",
        "kid": "child", "kids": "child", "children": "child", "孩子": "child", "hijos": "child",
        "hermano": "brother", "哥哥": "brother", "弟弟": "brother", "hermana": "sister",
        "姐姐": "sister", "妹妹": "sister", "丈夫": "husband", "老公": "husband",
        "esposo": "husband", "marido": "husband", "妻子": "wife", "老婆": "wife", "esposa": "wife",
        "grandma": "grandmother", "grandpa": "grandfather", "奶奶": "grandmother",
        "爷爷": "grandfather", "abuela": "grandmother", "abuelo": "grandfather",
    },
}


def normalise_literal(kind: str, raw: str | int | float) -> str:
    """Map a raw literal (any language, any case) to its canonical value or raise LiteralError."""
    if kind not in LITERAL_KINDS:
        raise LiteralError(f"unknown literal kind {kind!r}")
    allowed = LITERAL_KINDS[kind]
    if kind == "age_band":
        band = _age_band(raw)
        if band:
            return band
    text = str(raw).strip()
    low = text.lower()
    if low in allowed:
        return low
    if low.replace(" ", "_").replace("-", "_") in allowed:
        return low.replace(" ", "_").replace("-", "_")
    syn = LITERAL_SYNONYMS.get(kind, {})
    if low in syn:
        return syn[low]
    if text in syn:
        return syn[text]
    raise LiteralError(f"{raw!r} is not a valid {kind}; allowed: {', '.join(allowed)}")


_AGE = re.compile(r"^\s*(\d{1,3})\s*(岁|歲|years?(\s+old)?|yrs?|años|y/?o)?\s*$", re.IGNORECASE)


def _age_band(raw: str | int | float) -> str | None:
    """Accept an age ('34', 34, '34岁', '34 years old') or a band already in canonical form."""
    text = str(raw).strip()
    if text in LITERAL_KINDS["age_band"]:
        return text
    match = _AGE.match(text)
    if not match:
        return None
    age = int(match.group(1))
    if age < 18:
        return "under_18"
    for band in ("18-24", "25-34", "35-44", "45-54", "55-64"):
        lo, hi = (int(x) for x in band.split("-"))
        if lo <= age <= hi:
            return band
    return "65+"


class DerivedConflictRule(BaseModel):
    """A literal fact that clashes with liking anything under some Wikidata classes."""

    model_config = ConfigDict(frozen=True)

    name: str
    literal_predicate: str
    literal_values: tuple[str, ...]
    predicate: str
    descendant_of: tuple[str, ...]
    description: str = Field(default="")


DERIVED_CONFLICT_RULES: tuple[DerivedConflictRule, ...] = (
    DerivedConflictRule(
        name="vegetarian_likes_meat",
        literal_predicate="DIET",
        literal_values=("vegetarian", "vegan"),
        predicate="LIKES",
        descendant_of=("Q10990",),  # meat
        description="follows a vegetarian/vegan diet but likes a kind of meat",
    ),
    DerivedConflictRule(
        name="vegan_likes_dairy",
        literal_predicate="DIET",
        literal_values=("vegan",),
        predicate="LIKES",
        descendant_of=("Q185217",),  # dairy product
        description="follows a vegan diet but likes a dairy product",
    ),
)
