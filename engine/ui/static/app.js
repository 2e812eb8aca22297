/* Persona Engine explorer: plain JS, no build step. Talks only to this server's JSON API.
 * Every piece of graph data is inserted with textContent (never innerHTML): fact objects and
 * document texts are user-written. */
"use strict";

// --- small helpers ------------------------------------------------------------------------------

const $ = (sel, root = document) => root.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "style") node.style.cssText = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** Replace a node's children, skipping null / false (conditional parts of a template). */
function put(target, ...children) {
  target.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, { method = "GET", body } = {}) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let data = null;
  try { data = await res.json(); } catch { /* empty or non-JSON body */ }
  if (!res.ok) throw new ApiError(res.status, (data && data.message) || `${res.status} ${res.statusText}`);
  return data;
}

function showError(err) {
  const box = $("#error");
  if (!err) { box.hidden = true; box.textContent = ""; return; }
  box.textContent = err instanceof ApiError ? `Error ${err.status}: ${err.message}` : String(err.message || err);
  box.hidden = false;
}

const fmtTime = (s) => (s ? String(s).replace("T", " ").replace("Z", " UTC") : "—");
const fmtConf = (c) => (c === null || c === undefined ? "—" : Number(c).toFixed(2));
const compact = (v) => (typeof v === "string" ? v : JSON.stringify(v));

// --- colours: one per predicate, status overrides ---------------------------------------------

const PREDICATE_COLOURS = {
  LIKES: "#2e9d5b", DISLIKES: "#e07b39", LIVES_IN: "#2f6fb3", FROM_PLACE: "#5a8fd6",
  WORKS_AS: "#8e44ad", WORKS_AT: "#a569bd", STUDIES_AT: "#6c5ce7", OWNS: "#138d90",
  USES: "#17a2b8", WANTS: "#b7950b", HAS_PET: "#c2185b", HAS_FAMILY: "#d35400",
  SPEAKS: "#16a085", AGE_BAND: "#7f8c8d", GENDER: "#95a5a6", MARITAL_STATUS: "#a1887f",
  DIET: "#689f38", PURCHASED: "#455a64", VIEWED: "#90a4ae", MEMBER_OF: "#7e57c2",
};
const CONTEXT_TYPES = new Set(["INSTANCE_OF", "SUBCLASS_OF", "LOCATED_IN", "MANUFACTURER"]);

function predicateColour(type) {
  if (PREDICATE_COLOURS[type]) return PREDICATE_COLOURS[type];
  let h = 0;
  for (const ch of type) h = (h * 31 + ch.charCodeAt(0)) % 360;
  return `hsl(${h}, 55%, 45%)`;
}

const GRAPH_STYLE = [
  { selector: "node", style: {
    label: "data(caption)", "font-size": 11, color: "#1f2933", "text-valign": "bottom", "text-margin-y": 4,
    "text-wrap": "ellipsis", "text-max-width": 130, "background-color": "#9cc3e6", width: 26, height: 26,
    "border-width": 1, "border-color": "#6f8fb0", "text-background-color": "#ffffff",
    "text-background-opacity": 0.85, "text-background-padding": 1 } },
  { selector: 'node[kind = "User"]', style: {
    "background-color": "#1f3a5f", "border-color": "#1f3a5f", width: 46, height: 46,
    "font-weight": "bold", "font-size": 13 } },
  { selector: 'node[kind = "Value"]', style: { shape: "round-rectangle", "background-color": "#f3d98b", "border-color": "#c9a93b" } },
  { selector: 'node[kind = "Segment"]', style: { shape: "hexagon", "background-color": "#b39ddb", "border-color": "#7e57c2" } },
  { selector: 'node[kind = "Document"]', style: { shape: "rectangle", "background-color": "#e0e0e0" } },
  { selector: "node.context", style: {
    width: 16, height: 16, "background-color": "#dfe5eb", "border-color": "#b0b8c1", "font-size": 9, color: "#6b7785" } },
  { selector: "node.inactive", style: { opacity: 0.6 } },
  { selector: "node.quarantined-target", style: { "border-color": "#d93025", "border-width": 2 } },
  { selector: "edge", style: {
    width: "data(width)", "curve-style": "bezier", "line-color": "data(colour)", "target-arrow-color": "data(colour)",
    "target-arrow-shape": "triangle", "arrow-scale": 0.9, label: "data(label)", "font-size": 9,
    "text-rotation": "autorotate", color: "#3d4852", "text-background-color": "#ffffff",
    "text-background-opacity": 0.85, "text-background-padding": 1 } },
  { selector: "edge.context", style: {
    width: 1, "line-style": "dotted", "line-color": "#b0b8c1", "target-arrow-color": "#b0b8c1",
    "font-size": 8, color: "#8a94a0" } },
  { selector: "edge.superseded", style: {
    "line-style": "dashed", "line-dash-pattern": [6, 4], "line-color": "#9aa0a6", "target-arrow-color": "#9aa0a6", color: "#9aa0a6" } },
  { selector: "edge.quarantined", style: {
    "line-style": "dashed", "line-dash-pattern": [2, 3], "line-color": "#d93025", "target-arrow-color": "#d93025", color: "#d93025" } },
  { selector: ":selected", style: { "overlay-color": "#f5a623", "overlay-opacity": 0.3, "overlay-padding": 5 } },
];

/** Cytoscape elements from the API's {nodes, edges}. `rank` orders the concentric rings. */
function toElements(graph) {
  const incoming = new Map(); // node id → statuses of fact edges pointing at it
  for (const e of graph.edges) {
    if (!CONTEXT_TYPES.has(e.type)) {
      if (!incoming.has(e.target)) incoming.set(e.target, []);
      incoming.get(e.target).push(e.status || "active");
    }
  }
  const nodes = graph.nodes.map((n) => {
    const statuses = incoming.get(n.id) || [];
    const classes = [];
    if (n.kind === "Entity" && statuses.length === 0) classes.push("context");
    if (statuses.length && !statuses.includes("active")) classes.push("inactive");
    if (statuses.includes("quarantined")) classes.push("quarantined-target");
    const rank = n.kind === "User" ? 3 : statuses.length || n.kind === "Segment" ? 2 : 1;
    return { group: "nodes", data: { id: n.id, kind: n.kind, caption: n.caption, rank, raw: n }, classes: classes.join(" ") };
  });
  const edges = graph.edges.map((e) => {
    const context = CONTEXT_TYPES.has(e.type);
    const status = e.status || "active";
    const conf = Number(e.properties.confidence ?? 0.5);
    const suffix = context || status === "active" ? "" : ` (${status})`;
    return {
      group: "edges",
      data: {
        id: e.id, source: e.source, target: e.target, type: e.type, status,
        label: e.type + suffix, colour: predicateColour(e.type), width: context ? 1 : 1.5 + 3 * conf, raw: e,
      },
      classes: context ? "context" : status === "active" ? "" : status,
    };
  });
  return [...nodes, ...edges];
}

function drawGraph(container, graph, layoutName = "radial") {
  const cy = cytoscape({
    container,
    elements: toElements(graph),
    style: GRAPH_STYLE,
    wheelSensitivity: 0.3,
    minZoom: 0.2,
    maxZoom: 3,
  });
  if (layoutName === "radial") {
    const positions = radialPositions(cy);
    cy.layout({ name: "preset", positions: (n) => positions.get(n.id()), animate: false, padding: 30 }).run();
  } else {
    cy.layout({ name: "cose", animate: false, padding: 30, nodeRepulsion: () => 9000, idealEdgeLength: () => 90 }).run();
  }
  return cy;
}

/** Persona layout: the user in the centre, its facts (and segments) on a ring ordered by predicate,
 * each Wikidata parent on an outer ring at the mean angle of the facts it explains, so the
 * context reads outwards from the facts instead of crossing the drawing. */
function radialPositions(cy) {
  const positions = new Map();
  const centre = cy.nodes().filter((n) => n.data("rank") === 3);
  centre.forEach((n) => positions.set(n.id(), { x: 0, y: 0 }));
  const inner = cy.nodes().filter((n) => n.data("rank") === 2).sort((a, b) => {
    const key = (n) => `${n.data("kind") === "Segment" ? "~" : ""}${n.incomers("edge").map((e) => e.data("type")).sort().join()}|${n.data("caption")}`;
    return key(a).localeCompare(key(b));
  });
  const r1 = Math.max(170, (inner.length * 95) / (2 * Math.PI));
  const angle = new Map();
  inner.forEach((n, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(inner.length, 1);
    angle.set(n.id(), a);
    positions.set(n.id(), { x: r1 * Math.cos(a), y: r1 * Math.sin(a) });
  });
  // Outer ring: breadth-first outwards through context edges, each at its children's mean angle.
  const outer = [];
  let frontier = inner;
  const placed = new Set([...positions.keys()]);
  while (frontier.length) {
    const next = [];
    frontier.forEach((n) => n.outgoers("node").forEach((p) => {
      if (placed.has(p.id())) return;
      placed.add(p.id());
      next.push(p);
    }));
    for (const p of next) {
      const kids = p.incomers("node").filter((k) => angle.has(k.id()));
      const sx = kids.reduce((s, k) => s + Math.cos(angle.get(k.id())), 0);
      const sy = kids.reduce((s, k) => s + Math.sin(angle.get(k.id())), 0);
      angle.set(p.id(), Math.atan2(sy, sx));
      outer.push(p);
    }
    frontier = cy.collection(next);
  }
  // Spread crowded neighbours apart on the circle (both ways, wrapping at ±π) until every pair
  // is at least `gap` radians apart, so labels do not overlap.
  const r2 = Math.max(r1 + 190, (outer.length * 70) / (2 * Math.PI));
  const gap = 0.999 * Math.min((2 * Math.PI) / Math.max(outer.length, 1), 70 / r2);
  for (let pass = 0; pass < 300 && outer.length > 1; pass++) {
    outer.sort((a, b) => angle.get(a.id()) - angle.get(b.id()));
    let moved = false;
    for (let i = 0; i < outer.length; i++) {
      const j = (i + 1) % outer.length;
      const a = angle.get(outer[i].id());
      const b = angle.get(outer[j].id()) + (j === 0 ? 2 * Math.PI : 0);
      if (b - a < gap) {
        const push = (gap - (b - a)) / 2 + 1e-4;
        angle.set(outer[i].id(), a - push);
        angle.set(outer[j].id(), angle.get(outer[j].id()) + push);
        moved = true;
      }
    }
    if (!moved) break;
  }
  outer.forEach((n) => {
    const a = angle.get(n.id());
    positions.set(n.id(), { x: r2 * Math.cos(a), y: r2 * Math.sin(a) });
  });
  // Anything unconnected (should not happen) goes in a row below.
  cy.nodes().forEach((n, i) => { if (!positions.has(n.id())) positions.set(n.id(), { x: -r2 + i * 60, y: r2 + 80 }); });
  return positions;
}

// --- state and routing ---------------------------------------------------------------------------

const state = {
  persona: null, // GET /users/{id}
  cy: null, // persona graph
  cyCypher: null,
  segment: null,
  memberOffset: 0,
  memberLimit: 50,
  lastSearch: null,
};
window.personaUI = state; // handy in the browser console and for the browser tests

function showView(name) {
  for (const v of ["users", "segments", "cypher"]) $(`#view-${v}`).hidden = v !== name;
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === name);
}

async function route() {
  showError(null);
  const hash = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
  const [head, ...rest] = hash.split("/");
  const arg = rest.join("/");
  try {
    if (head === "segments") {
      showView("segments");
      await loadSegments();
      if (arg) await openSegment(arg, 0);
    } else if (head === "cypher") {
      showView("cypher");
    } else {
      showView("users");
      if (state.lastSearch === null) await search($("#search-input").value);
      if (head === "user" && arg) await openUser(arg);
    }
  } catch (err) {
    showError(err);
  }
}

// --- personas ----------------------------------------------------------------------------------

async function search(q) {
  state.lastSearch = q;
  const data = await api(`/users?q=${encodeURIComponent(q)}&limit=100`);
  const list = $("#result-list");
  put(list,
    ...data.users.map((u) => el("li", {},
      el("a", { href: `#/user/${encodeURIComponent(u.id)}`, "data-user": u.id },
        u.id,
        u.match === "entity" ? el("span", { class: "via" }, `${u.predicate} → ${u.via}`) : null))),
  );
  if (!data.users.length) list.append(el("li", { class: "muted" }, q ? `No user matches “${q}”.` : "No users yet."));
  $("#result-count").textContent = `(${data.users.length})`;
  markActiveResult();
  return data.users;
}

function markActiveResult() {
  const id = state.persona && state.persona.user.id;
  for (const a of document.querySelectorAll("#result-list a")) a.classList.toggle("active", a.dataset.user === id);
}

async function openUser(id) {
  const [persona, graph] = await Promise.all([
    api(`/users/${encodeURIComponent(id)}`),
    api(`/users/${encodeURIComponent(id)}/graph`),
  ]);
  state.persona = persona;
  const u = persona.user;
  $("#persona-title").textContent = u.id;
  $("#persona-meta").textContent =
    `${u.n_docs ?? 0} documents · languages ${(u.langs || []).join(", ") || "—"} · last seen ${fmtTime(u.last_seen)}`;
  if (state.cy) state.cy.destroy();
  state.cy = drawGraph($("#persona-graph"), graph);
  state.cy.on("tap", "edge", (evt) => onEdgeTap(evt.target));
  state.cy.on("tap", "node", (evt) => onNodeTap(evt.target));
  renderLegend(graph);
  renderFactsTable(persona.facts);
  renderConflicts(persona.conflicts);
  renderMemberships(persona.segments);
  put($("#fact-detail"),
    el("h3", {}, "Fact"), el("p", { class: "muted" }, "Click a fact (an edge or its object) in the graph, or a row in the table."));
  markActiveResult();
}

function renderLegend(graph) {
  const types = [...new Set(graph.edges.map((e) => e.type).filter((t) => !CONTEXT_TYPES.has(t)))].sort();
  put($("#legend"),
    ...types.map((t) => el("span", {}, el("span", { class: "sw", style: `border-color:${predicateColour(t)}` }), t)),
    el("span", {}, el("span", { class: "sw dashed", style: "border-color:#9aa0a6" }), "superseded"),
    el("span", {}, el("span", { class: "sw dashed", style: "border-color:#d93025" }), "quarantined"),
    el("span", {}, el("span", { class: "sw dashed", style: "border-color:#b0b8c1;border-top-width:1px" }), "Wikidata context"),
  );
}

function factKey(predicate, key) { return `${predicate}|${key}`; }

function renderFactsTable(facts) {
  const body = $("#facts-table tbody");
  put(body, ...facts.map((f, i) => el("tr", {
    class: `clickable ${f.status || "active"}`, "data-fact": factKey(f.predicate, f.key), "data-index": i,
    onclick: () => showFact(f),
  },
  el("td", {}, el("span", { class: "dot", style: `background:${predicateColour(f.predicate)}` }), f.predicate),
  el("td", {}, f.label ?? f.key),
  el("td", {}, f.status || "active"),
  el("td", { class: "num" }, fmtConf(f.confidence)))));
  if (!facts.length) body.append(el("tr", {}, el("td", { class: "muted" }, "No facts.")));
}

function renderConflicts(conflicts) {
  $("#conflict-count").textContent = `(${conflicts.length})`;
  put($("#conflict-list"), ...conflicts.map((c) => el("li", {},
    el("strong", {}, c.rule), " · ", c.resolution, " · ", el("span", { class: "muted" }, fmtTime(c.ts)),
    c.detail ? el("div", { class: "reason" }, c.detail) : null)));
  if (!conflicts.length) $("#conflict-list").append(el("li", { class: "muted" }, "No conflicts recorded."));
}

function renderMemberships(segments) {
  put($("#membership-list"), ...segments.map((s) => el("li", {},
    el("a", { href: `#/segments/${encodeURIComponent(s.segment_id)}` }, s.name || s.segment_id),
    s.reason ? el("div", { class: "reason muted" }, compact(s.reason)) : null)));
  if (!segments.length) $("#membership-list").append(el("li", { class: "muted" }, "Not in any segment."));
}

function factsFor(predicate, key) {
  return (state.persona ? state.persona.facts : []).filter((f) => f.predicate === predicate && f.key === key);
}

function onEdgeTap(edge) {
  const type = edge.data("type");
  const target = edge.target().data("raw");
  if (CONTEXT_TYPES.has(type)) return showEntity(target, `${edge.source().data("caption")} ${type} ${target.caption}`);
  if (type === "MEMBER_OF") return showEntity(target, `member of ${target.caption}`);
  const fact = factsFor(type, target.properties.key)[0];
  if (fact) showFact(fact);
}

function onNodeTap(node) {
  const raw = node.data("raw");
  if (raw.kind === "User") return;
  if (raw.kind === "Segment") { location.hash = `#/segments/${encodeURIComponent(raw.properties.id)}`; return; }
  const facts = (state.persona ? state.persona.facts : []).filter((f) => f.key === raw.properties.key);
  if (facts.length) showFact(facts.find((f) => f.status === "active") || facts[0], facts);
  else showEntity(raw, raw.caption);
}

function showEntity(raw, title) {
  const p = raw.properties || {};
  put($("#fact-detail"),
    el("h3", {}, raw.kind),
    el("div", { class: "fact-title" }, title),
    el("dl", { class: "kv" },
      ...[["QID", p.qid], ["key", p.key], ["en", p.label_en], ["zh", p.label_zh], ["es", p.label_es],
        ["description", p.description], ["size", p.size]]
        .filter(([, v]) => v !== undefined && v !== null)
        .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))])),
  );
}

function showFact(fact, siblings = []) {
  for (const tr of document.querySelectorAll("#facts-table tr")) {
    tr.classList.toggle("selected", tr.dataset.fact === factKey(fact.predicate, fact.key));
  }
  if (state.cy) {
    state.cy.elements().unselect();
    state.cy.edges().filter((e) => e.data("type") === fact.predicate && e.target().data("raw").properties.key === fact.key).select();
  }
  const status = fact.status || "active";
  const conf = Number(fact.confidence ?? 0);
  const rows = [
    ["status", el("span", {}, el("span", { class: `badge ${status}` }, status), fact.status_reason ? ` ${fact.status_reason}` : "")],
    ["confidence", el("span", {}, fmtConf(fact.confidence), el("span", { class: "conf" }, el("span", { style: `width:${Math.round(conf * 100)}%` })))],
    ["first seen", fmtTime(fact.first_seen)],
    ["last seen", fmtTime(fact.last_seen)],
    ["valid from", fmtTime(fact.valid_from)],
    ["valid to", fact.valid_to ? fmtTime(fact.valid_to) : "—"],
    ["evidence", `${fact.evidence_count ?? fact.evidence.length} document(s)`],
    ["object", fact.qid ? `${fact.label} (${fact.qid})` : `${fact.label} (${fact.key})`],
  ];
  if (fact.sentiment !== undefined && fact.sentiment !== null) rows.push(["sentiment", Number(fact.sentiment).toFixed(2)]);
  const others = siblings.filter((f) => f !== fact);
  put($("#fact-detail"),
    el("h3", {}, "Fact"),
    el("div", { class: "fact-title", id: "fact-title" },
      el("span", { class: "dot", style: `background:${predicateColour(fact.predicate)}` }),
      `${fact.predicate} → ${fact.label ?? fact.key}`),
    el("dl", { class: "kv" }, ...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
    others.length ? el("p", { class: "muted" }, "Also on this object: ",
      ...others.map((f, i) => [i ? ", " : "", el("a", { href: "#", onclick: (e) => { e.preventDefault(); showFact(f, siblings); } },
        `${f.predicate} (${f.status})`)])) : "",
    el("h3", {}, "Evidence (redacted text)"),
    el("ul", { class: "evidence", id: "evidence-list" }, ...evidenceItems(fact)),
  );
}

function evidenceItems(fact) {
  if (!fact.evidence_documents.length) {
    return [el("li", { class: "muted" }, fact.evidence.length ? `Documents ${fact.evidence.join(", ")} (no text stored)` : "No evidence documents.")];
  }
  return fact.evidence_documents.map((d) => el("li", { "data-doc": d.id },
    el("div", { class: "doc-meta" },
      `${d.id} · ${fmtTime(d.ts)} · ${d.lang || "?"} · ${d.source || "?"}`,
      d.sentiment !== undefined && d.sentiment !== null ? ` · sentiment ${compact(d.sentiment)}` : "",
      d.reason ? ` · ${d.reason}` : "",
      d.alerts && d.alerts.length ? el("span", { class: "alert-tag" }, ` · alerts: ${d.alerts.join(", ")}`) : ""),
    el("blockquote", {}, d.text ?? "(text not stored)")));
}

// --- segments ----------------------------------------------------------------------------------

async function loadSegments() {
  const segments = await api("/segments");
  put($("#segment-table tbody"), ...segments.map((s) => el("tr", {
    class: "clickable", "data-segment": s.id, onclick: () => { location.hash = `#/segments/${encodeURIComponent(s.id)}`; },
  },
  el("td", {}, el("strong", {}, s.name || s.id), s.name && s.name !== s.id ? el("div", { class: "muted" }, s.id) : null),
  el("td", { class: "num" }, s.size ?? "—"),
  el("td", {}, fmtTime(s.updated_at)))));
  $("#segment-empty").hidden = segments.length > 0;
}

async function openSegment(id, offset) {
  const page = await api(`/segments/${encodeURIComponent(id)}/members?offset=${offset}&limit=${state.memberLimit}`);
  state.segment = page.segment;
  state.memberOffset = offset;
  for (const tr of document.querySelectorAll("#segment-table tbody tr")) tr.classList.toggle("selected", tr.dataset.segment === id);
  const s = page.segment;
  put($("#segment-head"),
    el("h2", {}, s.name || s.id, el("span", { class: "muted" }, ` · ${s.size ?? "?"} members`)),
    s.updated_at ? el("div", { class: "muted" }, `updated ${fmtTime(s.updated_at)}`) : null,
  );
  $("#export-form").hidden = false;
  $("#export-result").textContent = "";
  put($("#member-table tbody"), ...page.members.map((m) => el("tr", {},
    el("td", {}, el("a", { href: `#/user/${encodeURIComponent(m.user_id)}` }, m.user_id)),
    el("td", { class: "reason" }, m.reason === null || m.reason === undefined ? "—" : compact(m.reason)),
    el("td", { class: "num" }, fmtConf(m.confidence)),
    el("td", {}, fmtTime(m.since)))));
  const total = page.total ?? offset + page.members.length;
  $("#member-pager").hidden = false;
  $("#page-info").textContent = page.members.length
    ? `${offset + 1}–${offset + page.members.length} of ${total}` : `0 of ${total}`;
  $("#page-prev").disabled = offset === 0;
  $("#page-next").disabled = offset + page.members.length >= total;
}

async function exportSegment(form) {
  const body = {
    format: form.format.value,
    hash_ids: form.hash_ids.checked,
    salt: form.salt.value || null,
  };
  $("#export-result").textContent = "exporting…";
  const res = await api(`/segments/${encodeURIComponent(state.segment.id)}/export`, { method: "POST", body });
  const m = res.manifest || {};
  const rows = m.rows ?? m.members ?? m.count;
  put($("#export-result"),
    `${rows !== undefined ? `${rows} rows → ` : ""}`,
    el("a", { href: res.download_url, id: "export-link", download: res.file }, res.file),
  );
}

// --- cypher console ----------------------------------------------------------------------------

function renderCell(v) {
  if (v && typeof v === "object" && !Array.isArray(v) && v._labels) {
    const { _id, _labels, ...props } = v;
    const name = props.id ?? props.label_en ?? props.label_zh ?? props.value ?? props.key ?? props.name ?? _id;
    return el("span", { class: "cell-node", title: JSON.stringify(props) }, `(:${_labels.join(":")} ${name})`);
  }
  if (v && typeof v === "object" && !Array.isArray(v) && v._type) {
    const { _type, status, confidence } = v;
    return el("span", { class: "cell-edge", title: JSON.stringify(v) },
      `[:${_type}${status ? ` ${status}` : ""}${confidence !== undefined ? ` ${fmtConf(confidence)}` : ""}]`);
  }
  if (v === null || v === undefined) return el("span", { class: "muted" }, "null");
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

async function runCypher() {
  let params;
  try { params = JSON.parse($("#cypher-params").value || "{}"); } catch (err) { throw new Error(`params are not JSON: ${err.message}`); }
  const body = { query: $("#cypher-query").value, params, limit: Number($("#cypher-limit").value) || undefined };
  $("#cypher-status").textContent = "running…";
  $("#cypher-run").disabled = true;
  try {
    const res = await api("/cypher", { method: "POST", body });
    $("#cypher-status").textContent =
      `${res.row_count} row(s) in ${res.elapsed_ms} ms${res.truncated ? ` — showing the first ${res.limit}` : ""}`;
    put($("#cypher-table thead"), el("tr", {}, ...res.columns.map((c) => el("th", {}, c))));
    put($("#cypher-table tbody"), ...res.rows.map((r) => el("tr", {}, ...r.map((v) => el("td", {}, renderCell(v))))));
    state.cypherResult = res;
    if (state.cyCypher) { state.cyCypher.destroy(); state.cyCypher = null; }
    if (!$("#cypher-graph").hidden) drawCypherGraph();
    const hasGraph = res.graph.nodes.length > 0;
    $('[data-tab="graph"]').textContent = hasGraph ? `Graph (${res.graph.nodes.length})` : "Graph";
  } catch (err) {
    $("#cypher-status").textContent = "";
    throw err;
  } finally {
    $("#cypher-run").disabled = false;
  }
}

function drawCypherGraph() {
  if (!state.cypherResult || state.cyCypher) return;
  state.cyCypher = drawGraph($("#cypher-graph"), state.cypherResult.graph, "cose");
}

function selectTab(name) {
  for (const b of document.querySelectorAll(".tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  $("#cypher-table-wrap").hidden = name !== "table";
  $("#cypher-graph").hidden = name !== "graph";
  if (name === "graph") drawCypherGraph();
}

// --- wiring ------------------------------------------------------------------------------------

function guard(fn) {
  return async (...args) => {
    try { showError(null); await fn(...args); } catch (err) { showError(err); }
  };
}

document.addEventListener("DOMContentLoaded", () => {
  if (typeof cytoscape === "undefined") {
    showError(new Error("Cytoscape.js is not installed on the server: run `npm ci --prefix engine/ui`."));
  }
  $("#search-form").addEventListener("submit", guard(async (e) => {
    e.preventDefault();
    if (!location.hash.startsWith("#/user") && location.hash !== "#/" && location.hash !== "") location.hash = "#/";
    const users = await search($("#search-input").value);
    if (users.length === 1) location.hash = `#/user/${encodeURIComponent(users[0].id)}`;
  }));
  $("#export-form").addEventListener("submit", guard(async (e) => { e.preventDefault(); await exportSegment(e.target); }));
  $("#page-prev").addEventListener("click", guard(() => openSegment(state.segment.id, Math.max(0, state.memberOffset - state.memberLimit))));
  $("#page-next").addEventListener("click", guard(() => openSegment(state.segment.id, state.memberOffset + state.memberLimit)));
  $("#cypher-form").addEventListener("submit", guard(async (e) => { e.preventDefault(); await runCypher(); }));
  $("#cypher-query").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); $("#cypher-form").requestSubmit(); }
  });
  for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => selectTab(b.dataset.tab));
  window.addEventListener("hashchange", route);
  route();
});
