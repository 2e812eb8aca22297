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
  // Writes carry the reviewer's token (kept for this browser tab only); reads need none.
  const token = sessionStorage.getItem("persona-token");
  if (method !== "GET" && token) init.headers.Authorization = `Bearer ${token}`;
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
  { selector: "edge.rejected", style: {
    "line-style": "dotted", "line-color": "#b3261e", "target-arrow-color": "#b3261e", color: "#b3261e", opacity: 0.7 } },
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
  for (const v of ["users", "segments", "cypher", "review", "quality"]) $(`#view-${v}`).hidden = v !== name;
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
    } else if (head === "review") {
      showView("review");
      await openReview(rest[0] || null, rest.slice(1).join("/") || null);
    } else if (head === "quality") {
      showView("quality");
      await loadQuality();
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

// --- review: one document at a time ------------------------------------------------------------

const SENTIMENTS = ["negative", "neutral", "positive"];
const rv = {
  batches: [], detail: null, item: null, options: null,
  verdicts: new Map(), // ref → {verdict, predicate?, object?}
  missing: [], // [{predicate, object, evidence}]
  sentiment: null, // {verdict, label?}
  selected: 0,
};
state.review = rv;

async function loadBatches() {
  rv.batches = await api("/review/batches");
  put($("#batch-table tbody"), ...rv.batches.map((b) => el("tr", {
    class: `clickable${rv.detail && rv.detail.batch.id === b.id ? " selected" : ""}`, "data-batch": b.id,
    onclick: () => { location.hash = `#/review/${encodeURIComponent(b.id)}`; },
  }, el("td", {}, el("strong", {}, b.id), el("div", { class: "muted" }, `${b.period} · seed ${b.seed}`)),
  el("td", { class: "num" }, `${b.judged}/${b.size}`))));
  $("#batch-empty").hidden = rv.batches.length > 0;
}

async function openReview(batchId, docId) {
  if (!rv.options) rv.options = await api("/review/options");
  await loadBatches();
  if (!batchId) {
    if (rv.batches.length) location.hash = `#/review/${encodeURIComponent(rv.batches[rv.batches.length - 1].id)}`;
    return;
  }
  rv.detail = await api(`/review/batches/${encodeURIComponent(batchId)}`);
  await loadBatches();
  if (!docId) {
    const open = rv.detail.items.find((i) => i.state === "pending") || rv.detail.items[0];
    if (open) location.hash = `#/review/${encodeURIComponent(batchId)}/${encodeURIComponent(open.doc_id)}`;
    renderItemList();
    return;
  }
  await openItem(batchId, docId);
}

function renderItemList() {
  const d = rv.detail;
  const done = d.items.filter((i) => i.state === "done").length;
  $("#item-list-title").textContent = `${d.batch.id}: ${done} of ${d.items.length} judged`;
  put($("#item-list"), ...d.items.map((i) => el("li", {
    class: `${i.state}${rv.item && rv.item.doc_id === i.doc_id ? " current" : ""}`, "data-doc": i.doc_id,
  }, el("a", { href: `#/review/${encodeURIComponent(d.batch.id)}/${encodeURIComponent(i.doc_id)}` },
    `${i.doc_id} (${i.lang || "?"}, ${i.n_facts} facts)`))));
}

async function openItem(batchId, docId) {
  const item = await api(`/review/batches/${encodeURIComponent(batchId)}/items/${encodeURIComponent(docId)}`);
  const same = rv.item && rv.item.batch_id === item.batch_id && rv.item.doc_id === item.doc_id && rv.item.rev === item.rev;
  rv.item = item;
  if (same) { renderItemList(); renderReview(); return; } // the same document again: keep the verdicts in progress
  rv.verdicts = new Map();
  rv.missing = [];
  rv.sentiment = null;
  rv.selected = 0;
  for (const j of item.judgements) { // resume: a judged document opens with its verdicts
    if (j.kind === "fact") rv.verdicts.set(j.ref, { verdict: j.verdict, predicate: j.fix_predicate, object: j.fix_object });
    else if (j.kind === "missing") rv.missing.push({ predicate: j.predicate, object: j.object, span: j.span });
    else if (j.kind === "sentiment") rv.sentiment = { verdict: j.verdict, label: j.label };
  }
  hideForms();
  $("#review-doc").hidden = false;
  $("#review-status").textContent = item.state === "done" ? `judged by ${item.judged_by} at ${fmtTime(item.judged_at)}` : "";
  put($("#review-head"), el("h2", {}, `Document ${item.position + 1} of ${item.of}`,
    el("span", { class: "muted" }, ` · ${item.doc_id} · ${item.lang || "?"} · ${fmtTime(item.ts)}`)));
  const done = rv.detail.items.filter((i) => i.state === "done").length;
  $("#review-progress-bar").style.width = `${Math.round((100 * done) / Math.max(rv.detail.items.length, 1))}%`;
  renderItemList();
  renderReview();
}

function renderReview() {
  const item = rv.item;
  // The text with each fact's evidence span (and added facts' spans) highlighted; textContent only.
  const marks = [];
  item.facts.forEach((f, i) => { if (f.span) marks.push({ start: f.span[0], end: f.span[1], ref: f.ref, i }); });
  rv.missing.forEach((m) => { if (m.span) marks.push({ start: m.span[0], end: m.span[1], added: true }); });
  marks.sort((a, b) => a.start - b.start || b.end - a.end);
  const parts = [];
  let at = 0;
  for (const m of marks) {
    if (m.start < at) continue; // overlapping spans: the first one is drawn
    parts.push(item.text.slice(at, m.start));
    const v = m.ref ? rv.verdicts.get(m.ref) : null;
    const cls = [m.added ? "added" : "", v ? `v-${v.verdict}` : "", m.i === rv.selected ? "sel" : ""].join(" ").trim();
    parts.push(el("mark", { class: cls, "data-ref": m.ref || null, title: m.ref || "added" }, item.text.slice(m.start, m.end)));
    at = m.end;
  }
  parts.push(item.text.slice(at));
  put($("#review-text"), ...parts);
  const eng = $("#engine-sentiment");
  eng.textContent = item.sentiment || "none";
  eng.className = `badge ${item.sentiment || "neutral"}`;
  const s = rv.sentiment;
  $("#sentiment-verdict").textContent = !s ? "not judged yet"
    : s.verdict === "correct" ? "✓ correct" : `✗ wrong, it is ${s.label}`;
  put($("#review-facts tbody"), ...item.facts.map((f, i) => {
    const v = rv.verdicts.get(f.ref);
    const now = item.current_status[f.ref];
    return el("tr", { class: `clickable${i === rv.selected ? " sel" : ""}`, "data-ref": f.ref,
      onclick: () => { rv.selected = i; renderReview(); } },
    el("td", {}, el("span", { class: "dot", style: `background:${predicateColour(f.predicate)}` }), `${f.predicate} → ${f.label}`),
    el("td", {}, f.tier),
    el("td", { class: "num" }, fmtConf(f.confidence)),
    el("td", {}, el("span", { class: `badge ${now || "rejected"}` }, now || "gone")),
    el("td", { class: "verdict-cell" }, v ? el("span", { class: `verdict ${v.verdict}` },
      v.verdict === "fix" ? `fix → ${v.predicate} ${v.object}` : v.verdict) : el("span", { class: "muted" }, "—")));
  }));
  if (!item.facts.length) $("#review-facts tbody").append(el("tr", {}, el("td", { class: "muted", colspan: 5 }, "The engine found no facts here.")));
  put($("#missing-list"), ...rv.missing.map((m, k) => el("li", { "data-missing": k },
    `+ ${m.predicate} → ${m.object}`, m.span ? el("span", { class: "muted" }, ` “${item.text.slice(m.span[0], m.span[1])}”`) : "",
    " ", el("a", { href: "#", onclick: (e) => { e.preventDefault(); rv.missing.splice(k, 1); renderReview(); } }, "remove"))));
  if (!rv.missing.length) $("#missing-list").append(el("li", { class: "muted" }, "None added (a adds one)."));
}

function setVerdict(verdict, extra = {}) {
  const f = rv.item.facts[rv.selected];
  if (!f) return;
  rv.verdicts.set(f.ref, { verdict, ...extra });
  if (rv.selected < rv.item.facts.length - 1) rv.selected += 1;
  renderReview();
}

function setSentiment(label) {
  const engine = rv.item.sentiment;
  rv.sentiment = label === null || label === engine ? { verdict: "correct" } : { verdict: "wrong", label };
  if (rv.sentiment.verdict === "correct" && !engine) { rv.sentiment = null; throw new Error("The engine stored no sentiment here: pick the label (1/2/3)."); }
  renderReview();
}

function fillPredicates(select, chosen) {
  put(select, ...rv.options.predicates.map((p) => el("option", { value: p, selected: p === chosen }, p)));
}

function hideForms() {
  // Give the keyboard back to the page: a hidden input keeps focus otherwise and would eat the keys.
  const active = document.activeElement;
  if (active && active.closest && active.closest(".fact-form")) active.blur();
  $("#fix-form").hidden = true;
  $("#add-form").hidden = true;
}

function openFix() {
  const f = rv.item.facts[rv.selected];
  if (!f) return;
  hideForms();
  fillPredicates($("#fix-predicate"), f.predicate);
  $("#fix-object").value = f.label;
  $("#fix-title").textContent = `Fix ${f.predicate} → ${f.label}`;
  $("#fix-form").hidden = false;
  $("#fix-object").focus();
  $("#fix-object").select();
}

function openAdd() {
  hideForms();
  fillPredicates($("#add-predicate"), "LIKES");
  $("#add-object").value = "";
  const sel = String(window.getSelection() || "").trim();
  $("#add-evidence").value = sel && rv.item.text.includes(sel) ? sel : "";
  $("#add-form").hidden = false;
  $("#add-predicate").focus();
}

function nextOpenDoc(after) {
  const items = rv.detail.items;
  const pos = items.findIndex((i) => i.doc_id === after);
  const order = [...items.slice(pos + 1), ...items.slice(0, pos + 1)];
  return order.find((i) => i.state === "pending" && i.doc_id !== after) || null;
}

function gotoDoc(doc) {
  location.hash = `#/review/${encodeURIComponent(rv.detail.batch.id)}/${encodeURIComponent(doc)}`;
}

function move(step) {
  const items = rv.detail.items;
  const pos = items.findIndex((i) => i.doc_id === rv.item.doc_id);
  const next = items[pos + step];
  if (next) gotoDoc(next.doc_id);
}

async function saveItem() {
  const item = rv.item;
  const unjudged = item.facts.filter((f) => !rv.verdicts.has(f.ref));
  if (unjudged.length) throw new Error(`Judge every fact first: ${unjudged.map((f) => `${f.predicate} → ${f.label}`).join(", ")}`);
  if (!rv.sentiment) throw new Error("Judge the sentiment first (s, or 1/2/3).");
  const body = {
    rev: item.rev,
    facts: item.facts.map((f) => {
      const v = rv.verdicts.get(f.ref);
      return v.verdict === "fix" ? { ref: f.ref, verdict: "fix", predicate: v.predicate, object: v.object } : { ref: f.ref, verdict: v.verdict };
    }),
    missing: rv.missing.map((m) => (m.span ? { predicate: m.predicate, object: m.object, span: m.span }
      : { predicate: m.predicate, object: m.object, evidence: m.evidence })),
    sentiment: rv.sentiment,
  };
  $("#review-status").textContent = "saving…";
  const batchId = rv.detail.batch.id;
  const res = await api(`/review/batches/${encodeURIComponent(batchId)}/items/${encodeURIComponent(item.doc_id)}`, { method: "PUT", body });
  rv.detail = await api(`/review/batches/${encodeURIComponent(batchId)}`);
  await loadBatches();
  $("#review-status").textContent = `saved (${res.rejected} rejected, ${res.confirmed} confirmed, ${res.added} added)`;
  const next = nextOpenDoc(item.doc_id);
  if (next) gotoDoc(next.doc_id);
  else {
    await openItem(batchId, item.doc_id);
    $("#review-status").textContent = "Batch complete: every document is judged. See Quality.";
  }
}

function typing(e) {
  const t = e.target;
  return t && ["INPUT", "SELECT", "TEXTAREA", "BUTTON"].includes(t.tagName);
}

function wireReview() {
  const token = $("#review-token");
  token.value = sessionStorage.getItem("persona-token") || "";
  token.addEventListener("input", () => sessionStorage.setItem("persona-token", token.value.trim()));
  $("#review-save").addEventListener("click", guard(saveItem));
  $("#review-next").addEventListener("click", () => move(1));
  $("#review-prev").addEventListener("click", () => move(-1));
  $("#fix-form").addEventListener("submit", guard(async (e) => {
    e.preventDefault();
    const object = $("#fix-object").value.trim();
    if (!object) throw new Error("The fix needs an object.");
    hideForms();
    setVerdict("fix", { predicate: $("#fix-predicate").value, object });
  }));
  $("#add-form").addEventListener("submit", guard(async (e) => {
    e.preventDefault();
    const object = $("#add-object").value.trim();
    const evidence = $("#add-evidence").value;
    if (!object) throw new Error("The missing fact needs an object.");
    const start = evidence ? rv.item.text.indexOf(evidence) : -1;
    if (start < 0) throw new Error(`The evidence “${evidence}” is not in the text: select the words in the text.`);
    rv.missing.push({ predicate: $("#add-predicate").value, object, span: [start, start + evidence.length] });
    hideForms();
    renderReview();
  }));
  for (const b of document.querySelectorAll(".fact-form [data-cancel]")) b.addEventListener("click", hideForms);
  document.addEventListener("keydown", (e) => {
    if ($("#view-review").hidden || !rv.item) return;
    if (e.key === "Escape") { hideForms(); if (e.target.blur) e.target.blur(); return; }
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    const n = rv.item.facts.length;
    const actions = {
      j: () => { rv.selected = Math.min(n - 1, rv.selected + 1); renderReview(); },
      ArrowDown: () => { rv.selected = Math.min(n - 1, rv.selected + 1); renderReview(); },
      k: () => { rv.selected = Math.max(0, rv.selected - 1); renderReview(); },
      ArrowUp: () => { rv.selected = Math.max(0, rv.selected - 1); renderReview(); },
      c: () => setVerdict("correct"),
      w: () => setVerdict("wrong"),
      f: openFix,
      a: openAdd,
      s: () => setSentiment(null),
      1: () => setSentiment("negative"),
      2: () => setSentiment("neutral"),
      3: () => setSentiment("positive"),
      n: () => move(1),
      p: () => move(-1),
      Enter: saveItem,
    };
    const act = actions[e.key];
    if (!act) return;
    e.preventDefault();
    guard(act)();
  });
}

// --- quality over time -------------------------------------------------------------------------

const pct = (v) => (v === null || v === undefined ? "—" : Number(v).toFixed(3));
function fmtInterval(i) {
  if (!i || i.value === null || i.value === undefined) return "—";
  if (i.low === null || i.low === undefined) return pct(i.value);
  const wide = i.high - i.low > 0.2;
  return el("span", { class: wide ? "wide-ci" : "", title: wide ? "wide interval: few documents" : "" },
    `${pct(i.value)} [${Number(i.low).toFixed(2)}–${Number(i.high).toFixed(2)}]`);
}

async function loadQuality() {
  const q = await api("/review/quality");
  state.quality = q;
  const banner = $("#quality-alert");
  banner.hidden = !q.alert;
  banner.textContent = q.alert ? `Quality alert: ${q.alert.message}` : "";
  $("#quality-note").textContent = `${q.note}. A batch of ~100 documents gives intervals of ±0.1 or more: `
    + "compare months by their intervals, not their points.";
  put($("#quality-table tbody"), ...q.batches.map((b) => {
    const m = b.metrics;
    return el("tr", { "data-batch": b.batch_id },
      el("td", {}, el("a", { href: `#/review/${encodeURIComponent(b.batch_id)}` }, b.batch_id)),
      el("td", {}, b.period), el("td", { class: "num" }, `${b.judged}/${b.size}`),
      el("td", {}, m ? fmtInterval(m.facts.precision) : "—"), el("td", {}, m ? fmtInterval(m.facts.recall) : "—"),
      el("td", { class: "f1" }, m ? fmtInterval(m.facts.f1) : "—"), el("td", {}, m ? fmtInterval(m.sentiment.macro_f1) : "—"),
      el("td", { class: "reason" }, b.note || ""));
  }));
  drawQualityChart(q);
  const latest = [...q.batches].reverse().find((b) => b.metrics);
  $("#slices-title").textContent = latest ? `${latest.batch_id} by language, predicate and extractor tier` : "Nothing judged yet";
  put($("#quality-slices"), ...(latest ? [["language", latest.metrics.by_lang], ["predicate", latest.metrics.by_predicate],
    ["extractor tier", latest.metrics.by_tier]].map(([title, rows]) => el("table", { class: "grid small", "data-slice": title },
    el("thead", {}, el("tr", {}, ...[title, "TP", "FP", "FN", "precision", "recall", "F1"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((s) => el("tr", {}, el("td", {}, s.key), el("td", {}, s.tp), el("td", {}, s.fp),
      el("td", {}, s.fn ?? "—"), el("td", {}, fmtInterval(s.precision)), el("td", {}, fmtInterval(s.recall)),
      el("td", {}, fmtInterval(s.f1))))))) : []));
}

function drawQualityChart(q) {
  if (typeof Chart === "undefined") throw new Error("Chart.js is not installed on the server: run `npm ci --prefix engine/ui`.");
  const labels = q.batches.map((b) => `${b.batch_id} (${b.period})`);
  const pick = (f) => q.batches.map((b) => (b.metrics ? f(b.metrics) : null));
  const datasets = [
    { label: "F1 interval high", data: pick((m) => m.facts.f1 && m.facts.f1.high), borderWidth: 0, pointRadius: 0, fill: false },
    { label: "F1 interval", data: pick((m) => m.facts.f1 && m.facts.f1.low), borderWidth: 0, pointRadius: 0,
      fill: "-1", backgroundColor: "rgba(47,111,179,0.15)" },
    { label: "fact F1", data: pick((m) => m.facts.f1 && m.facts.f1.value), borderColor: "#2f6fb3", backgroundColor: "#2f6fb3", borderWidth: 3 },
    { label: "precision", data: pick((m) => m.facts.precision.value), borderColor: "#2e8b57", backgroundColor: "#2e8b57", borderDash: [4, 3] },
    { label: "recall", data: pick((m) => m.facts.recall && m.facts.recall.value), borderColor: "#e07b39", backgroundColor: "#e07b39", borderDash: [4, 3] },
    { label: "sentiment macro-F1", data: pick((m) => m.sentiment.macro_f1.value), borderColor: "#8e44ad", backgroundColor: "#8e44ad" },
  ];
  if (state.qualityChart) state.qualityChart.destroy();
  state.qualityChart = new Chart($("#quality-chart"), {
    type: "line",
    data: { labels, datasets },
    options: {
      animation: false, maintainAspectRatio: false, spanGaps: true,
      scales: { x: { offset: true }, y: { min: 0, max: 1, title: { display: true, text: "score" } } },
      plugins: { legend: { labels: { filter: (item) => item.text !== "F1 interval high" } } },
    },
  });
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
  wireReview();
  window.addEventListener("hashchange", route);
  route();
});
