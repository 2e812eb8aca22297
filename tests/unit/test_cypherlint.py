from __future__ import annotations

import pytest

from tests import cypherlint
from tests.cypherlint import LintResult, lint_statements

UPSERT_LIKES = (
    "UNWIND $rows AS r "
    "MERGE (u:User {id: r.user_id}) ON CREATE SET u.first_seen = r.ts "
    "MERGE (u)-[f:LIKES]->(e:Entity {key: r.key}) "
    "SET f.confidence = 1 - (1 - coalesce(f.confidence, 0.0)) * (1 - r.confidence)"
)
USERS_BY_CLASS = (
    "MATCH (u:User)-[:LIKES]->(e)-[:INSTANCE_OF|SUBCLASS_OF*0..8]->(c:Entity) "
    "WHERE c.qid IN $classes RETURN DISTINCT u.id"
)
CASES = {
    "valid": "MATCH (n:Person) WHERE n.age > 30 RETURN n.name AS name ORDER BY name",
    "upsert": UPSERT_LIKES,
    "by_class": USERS_BY_CLASS,
    "syntax": "MATCH (n RETURN n",
    "undefined_var": "RETURN x",
    "deprecated": "MATCH (n) RETURN id(n)",
    "two_statements": "RETURN 1; RETURN 2",
}


@pytest.fixture(scope="module")
def results() -> dict[str, LintResult]:
    # One node process for all cases: start-up dominates a single statement.
    linted = lint_statements(list(CASES.values()))
    return dict(zip(CASES, linted, strict=True))


def test_results_keep_input_order(results: dict[str, LintResult]) -> None:
    assert [r.index for r in results.values()] == list(range(len(CASES)))
    assert [r.statement for r in results.values()] == list(CASES.values())


@pytest.mark.parametrize("name", ["valid", "upsert", "by_class"])
def test_valid_statements_have_no_errors(
    results: dict[str, LintResult], name: str
) -> None:
    assert results[name].errors == []


def test_parameters_and_unknown_schema_are_not_flagged(
    results: dict[str, LintResult],
) -> None:
    # $rows / $classes are bound at run time and no DB schema is known.
    for name in ("upsert", "by_class"):
        assert results[name].warnings == []


def test_syntax_error_is_an_error(results: dict[str, LintResult]) -> None:
    [error] = results["syntax"].errors
    assert "Invalid input 'RETURN'" in error


def test_undefined_variable_is_an_error(results: dict[str, LintResult]) -> None:
    [error] = results["undefined_var"].errors
    assert "Variable `x` not defined" in error


def test_deprecation_is_a_visible_warning(results: dict[str, LintResult]) -> None:
    assert results["deprecated"].errors == []
    assert any("deprecated" in w for w in results["deprecated"].warnings)


def test_multiple_statements_in_one_string_are_an_error(
    results: dict[str, LintResult],
) -> None:
    assert any("exactly one statement" in e for e in results["two_statements"].errors)


def test_empty_input_needs_no_node() -> None:
    assert lint_statements([]) == []


def test_missing_node_modules_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setattr(cypherlint, "TOOL_DIR", tmp_path)
    with pytest.raises(RuntimeError, match="npm ci --prefix tools/cypherlint"):
        lint_statements(["RETURN 1"])


def test_missing_node_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cypherlint.shutil, "which", lambda _name: None)
    with pytest.raises(RuntimeError, match="npm ci --prefix tools/cypherlint"):
        lint_statements(["RETURN 1"])
