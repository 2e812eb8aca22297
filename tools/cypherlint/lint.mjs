#!/usr/bin/env node
// Lints Cypher statements with Neo4j's own parser + semantic analysis
// (@neo4j-cypher/language-support, the engine behind the Neo4j VS Code
// extension and Workspace), without needing a running database.
//
// Usage:  node lint.mjs [statements.json]      (reads stdin when no file given)
// Input:  JSON array of strings, one Cypher statement each.
// Output: JSON array of {index, statement, diagnostics: [{severity, message,
//         offsets: {start, end}, range: {start: {line, character}, end: ...}}]}
//         severity is "error" | "warning" | "information" | "hint".
// Exit:   0 = no error-severity diagnostic, 1 = at least one, 2 = bad input.
//
// Expected warnings (reported, never turned into errors): Neo4j's semantic
// notifications, e.g. deprecations such as `id(n)` ("The query used a deprecated
// function ... elementId") or `[:A|:B]` ("colon in the separation of alternative
// relationship types"), cartesian-product hints for `MATCH (a), (b)`, and
// unbounded shortestPath performance hints.
//
// Deliberately NOT checked (no DB schema is known at lint time):
//  - labels / relationship types / property keys: the library only warns about
//    these when DbSchema lists them, so we pass none of those lists;
//  - function / procedure names: only checked when DbSchema.functions/procedures
//    are given, so `foo(1)` or `CALL apoc.x()` are not flagged;
//  - parameter values: every `$param` is assumed to be supplied by the caller.
import { readFileSync } from 'node:fs';
import {
  isNotParamError,
  lintCypherQuery,
  parseStatementsStrs,
} from '@neo4j-cypher/language-support';

// Statements without an explicit `CYPHER 25` prefix get Neo4j 5 semantics.
// graphSchema must stay unset: its code path needs Set.prototype.union (Node 22+).
const DB_SCHEMA = Object.freeze({ defaultLanguage: 'CYPHER 5' });

// LSP DiagnosticSeverity numbers (vscode-languageserver-types).
const SEVERITY = { 1: 'error', 2: 'warning', 3: 'information', 4: 'hint' };

function fail(message) {
  process.stderr.write(`cypherlint: ${message}\n`);
  process.exit(2);
}

function readInput() {
  const [path] = process.argv.slice(2);
  let text;
  try {
    text = readFileSync(path ?? 0, 'utf8');
  } catch (e) {
    fail(`cannot read ${path ?? 'stdin'}: ${e.message}`);
  }
  let data;
  try {
    data = JSON.parse(text);
  } catch (e) {
    fail(`input is not valid JSON: ${e.message}`);
  }
  if (!Array.isArray(data) || !data.every((s) => typeof s === 'string')) {
    fail('input must be a JSON array of strings');
  }
  return data;
}

function toolError(message, statement) {
  return {
    severity: 'error',
    message,
    offsets: { start: 0, end: statement.length },
    range: null,
  };
}

function lintOne(statement) {
  const parts = parseStatementsStrs(statement).length;
  if (parts === 0) {
    return [toolError('Empty statement.', statement)];
  }
  // A driver's session.run() executes a single statement; a `;`-joined batch
  // would be rejected by the server even if each part is valid.
  const extra =
    parts > 1
      ? [toolError(`Expected exactly one statement, found ${parts}.`, statement)]
      : [];
  // Console commands (:param, :use ...) are Browser-only; drivers can't run them.
  const { diagnostics } = lintCypherQuery(statement, DB_SCHEMA, {
    consoleCommandsEnabled: false,
  });
  return extra.concat(
    diagnostics
      // Parameters are bound at run time; the library reports every $param as
      // undefined unless DbSchema.parameters holds a value for it.
      .filter(isNotParamError)
      .map((d) => ({
        severity: SEVERITY[d.severity] ?? 'error',
        message: d.message,
        offsets: d.offsets,
        range: d.range,
      })),
  );
}

const statements = readInput();
const results = statements.map((statement, index) => {
  let diagnostics;
  try {
    diagnostics = lintOne(statement);
  } catch (e) {
    // A crash must not look like a clean statement.
    diagnostics = [toolError(`cypherlint crashed: ${e?.message ?? e}`, statement)];
  }
  return { index, statement, diagnostics };
});

process.stdout.write(JSON.stringify(results) + '\n');
const hasError = results.some((r) =>
  r.diagnostics.some((d) => d.severity === 'error'),
);
process.exitCode = hasError ? 1 : 0;
