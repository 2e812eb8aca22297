"""Static checks of Cypher statements with Neo4j's own linter, no database needed.

The parser and semantic analysis live only in the npm package
@neo4j-cypher/language-support, so this shells out to tools/cypherlint/lint.mjs.
No DB schema is known at lint time: unknown labels, relationship types, property
keys and function names are not reported, and every `$param` is assumed bound.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from pydantic import BaseModel

REPO_ROOT = Path(__file__).resolve().parents[1]  # tests/ → repo root
TOOL_DIR = REPO_ROOT / "tools" / "cypherlint"
LINT_SCRIPT = TOOL_DIR / "lint.mjs"
INSTALL_HINT = "run `npm ci --prefix tools/cypherlint` from the repository root"

# The semantic analysis costs ~35-120 ms per statement plus ~1.5 s start-up.
_BASE_TIMEOUT_S = 60.0
_PER_STATEMENT_TIMEOUT_S = 2.0


class LintResult(BaseModel):
    index: int
    statement: str
    errors: list[str]
    warnings: list[str]


def _format(diagnostic: dict) -> str:
    offsets = diagnostic.get("offsets") or {}
    return f"{diagnostic['message']} (offset {offsets.get('start', 0)})"


def lint_statements(statements: list[str]) -> list[LintResult]:
    """Lint each statement with Neo4j 5 semantics; one result per input, same order."""
    if not statements:
        return []
    if not all(isinstance(s, str) for s in statements):
        raise TypeError("statements must be a list of str")
    node = shutil.which("node")
    if node is None:
        raise RuntimeError(
            f"Cypher linting needs Node.js (`node` not on PATH); install it, then {INSTALL_HINT}"
        )
    if not (TOOL_DIR / "node_modules" / "@neo4j-cypher" / "language-support").is_dir():
        raise RuntimeError(
            f"Cypher linter dependencies missing in {TOOL_DIR / 'node_modules'}: {INSTALL_HINT}"
        )

    proc = subprocess.run(
        [node, str(LINT_SCRIPT)],
        input=json.dumps(statements),
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=TOOL_DIR,
        timeout=_BASE_TIMEOUT_S + _PER_STATEMENT_TIMEOUT_S * len(statements),
        check=False,
    )
    # lint.mjs exits 1 when some statement has an error; that is a result, not a failure.
    if proc.returncode not in (0, 1):
        raise RuntimeError(
            f"cypherlint failed (exit {proc.returncode}): {proc.stderr.strip()}"
        )
    try:
        raw = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(
            f"cypherlint printed invalid JSON: {exc}; stderr: {proc.stderr.strip()}"
        ) from exc

    results = []
    for item in raw:
        diagnostics = item["diagnostics"]
        results.append(
            LintResult(
                index=item["index"],
                statement=item["statement"],
                errors=[_format(d) for d in diagnostics if d["severity"] == "error"],
                # information/hint notices are advisory, like warnings.
                warnings=[_format(d) for d in diagnostics if d["severity"] != "error"],
            )
        )
    return results
