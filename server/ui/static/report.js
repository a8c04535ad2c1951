// The Report view: the tree's coverage as a treemap (area: questions; colour: mean judge score, answered share or
// near-duplicate rate; a tag with children zooms in, a leaf lists its questions), histograms of scores and lengths,
// and near-duplicate rates per tag; plus the dashboard's calls-per-minute and cost charts. The data is one
// dataset_report(breakdown="tags"): every tag's own figures, summed here for a zoomed subtree. Charts are SVG built
// with DOM calls; names and paths are text nodes, never markup. app.js calls this factory with what it needs.
"use strict";
window.treedistillReport = function (app) {
  const { h, call, show, fmt, state } = app;
  const SVG = "http://www.w3.org/2000/svg";
  const MAP = { width: 1000, height: 300, header: 16, pad: 2 };
  const SCORES = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"];
  const LENGTHS = [["question_tokens", "Question length (tokens)"], ["answer_tokens", "Answer length (tokens)"],
    ["reasoning_tokens", "Reasoning length (tokens)"]];
  const COLOURS = { score: "mean judge score", answered: "answered share", duplicates: "near-duplicate rate" };
  const MAX_SAMPLES = 600;  // dashboard samples kept per job (20 minutes at one poll every 2 s)
  const view = { data: null, root: null, zoom: null, colour: "score" };
  const samples = new Map();

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (key === "text") el.textContent = String(value); else el.setAttribute(key, String(value));
    }
    for (const child of children.flat()) if (child) el.append(child);
    return el;
  }
  const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)}%`);

  // -- the tree from the per-tag figures --------------------------------------------------------------------
  function buildTree(data) {
    const nodes = new Map(data.tags.map((t) => [t.tag_id, { id: t.tag_id, own: t, path: t.tag_path, children: [] }]));
    const top = { id: null, own: null, path: null, name: "All tags", children: [] };
    for (const node of nodes.values()) {
      const parent = nodes.get(node.own.parent_id);
      node.name = parent ? node.path.slice(parent.path.length + 3) : node.path;  // "parent > name"
      if (parent) parent.children.push(node); else top.children.push(node);
    }
    for (const node of nodes.values()) node.parent = nodes.get(node.own.parent_id) || null;
    if (data.tag_id !== null && data.tag_id !== undefined && nodes.has(data.tag_id)) return nodes.get(data.tag_id);
    top.children.forEach((child) => { child.parent = top; });
    return top;
  }
  function addHist(into, from) { for (const [k, v] of Object.entries(from || {})) into[k] = (into[k] || 0) + v; }
  // A node's figures over its subtree: counts and histograms add up; shares are weighted back into counts.
  function sum(node) {
    if (node.total) return node.total;
    const t = { questions: 0, answered: 0, failed: 0, held_out: 0, unscored: 0, with_reasoning: 0, removable: 0,
      dupKnown: true, scores: {}, lengths: {} };
    const parts = (node.own ? [node.own] : []);
    for (const f of parts) {
      t.questions += f.questions; t.answered += f.answered; t.failed += f.failed; t.held_out += f.held_out;
      t.unscored += f.unscored; t.with_reasoning += Math.round((f.with_reasoning_share || 0) * f.answered);
      if (f.near_duplicate_rate === null) t.dupKnown = false;
      else t.removable += Math.round(f.near_duplicate_rate * f.questions);
      addHist(t.scores, f.score_histogram);
      for (const [key] of LENGTHS) { t.lengths[key] = t.lengths[key] || {}; addHist(t.lengths[key], (f[key] || {}).histogram); }
    }
    for (const child of node.children) {
      const c = sum(child);
      for (const key of ["questions", "answered", "failed", "held_out", "unscored", "with_reasoning", "removable"]) t[key] += c[key];
      t.dupKnown = t.dupKnown && c.dupKnown;
      addHist(t.scores, c.scores);
      for (const [key] of LENGTHS) { t.lengths[key] = t.lengths[key] || {}; addHist(t.lengths[key], c.lengths[key]); }
    }
    node.total = t;
    return t;
  }
  function meanScore(t) {
    let n = 0, total = 0;
    for (const [score, count] of Object.entries(t.scores)) { n += count; total += Number(score) * count; }
    return n ? total / n : null;
  }
  // 0 (bad, red) .. 1 (good, green), or null when there is nothing to colour by.
  function goodness(t) {
    if (view.colour === "answered") return t.questions ? t.answered / t.questions : null;
    if (view.colour === "duplicates") return t.dupKnown && t.questions ? 1 - Math.min(t.removable / t.questions / 0.25, 1) : null;
    const mean = meanScore(t);
    return mean === null ? null : (mean - 1) / 9;
  }
  function describe(node, t) {
    const mean = meanScore(t);
    return `${node.path || "All tags"}\n${fmt(t.questions)} questions, ${fmt(t.answered)} answered, ${fmt(t.failed)} failed` +
      `\nmean judge score: ${mean === null ? "none scored" : mean.toFixed(1)}` +
      (t.dupKnown ? `\nnear-duplicates: ${pct(t.questions ? t.removable / t.questions : null)}` : "");
  }

  // -- treemap (squarified) ------------------------------------------------------------------------------------
  // The cells of a node: its children, and its own questions when it has children too. An empty leaf is drawn at
  // the size of one question, so a gap in the coverage shows instead of vanishing.
  function cellsOf(node) {
    const cells = node.children.map((child) => ({ node: child, weight: weight(child) }));
    if (node.own && node.own.questions && node.children.length) cells.push({ node, own: true, weight: node.own.questions });
    return cells.filter((cell) => cell.weight > 0).sort((a, b) => b.weight - a.weight);
  }
  function weight(node) {
    if (!node.children.length) return Math.max(node.own ? node.own.questions : 0, 1);
    return (node.own ? node.own.questions : 0) + node.children.reduce((total, child) => total + weight(child), 0);
  }
  function worst(row, side, scale) {
    const area = row.reduce((a, c) => a + c.weight * scale, 0);
    let max = 0, min = Infinity;
    for (const c of row) { max = Math.max(max, c.weight * scale); min = Math.min(min, c.weight * scale); }
    return Math.max((side * side * max) / (area * area), (area * area) / (side * side * min));
  }
  function squarify(cells, rect) {
    const total = cells.reduce((a, c) => a + c.weight, 0);
    const out = [];
    let { x, y, w, h: height } = rect;
    const scale = (w * height) / (total || 1);
    let rest = cells.slice(), row = [];
    while (rest.length) {
      const side = Math.min(w, height);
      const next = rest[0];
      if (!row.length || worst(row, side, scale) >= worst([...row, next], side, scale)) { row.push(next); rest.shift(); continue; }
      ({ x, y, w, height } = placeRow(row, { x, y, w, height }, scale, out)); row = [];
    }
    if (row.length) placeRow(row, { x, y, w, height }, scale, out);
    return out;
  }
  function placeRow(row, r, scale, out) {
    const area = row.reduce((a, c) => a + c.weight * scale, 0);
    if (r.w >= r.height) {  // a column on the left
      const width = area / r.height; let top = r.y;
      for (const c of row) { const hh = (c.weight * scale) / width; out.push({ cell: c, x: r.x, y: top, w: width, h: hh }); top += hh; }
      return { x: r.x + width, y: r.y, w: r.w - width, height: r.height };
    }
    const rowHeight = area / r.w; let left = r.x;  // a row on top
    for (const c of row) { const ww = (c.weight * scale) / rowHeight; out.push({ cell: c, x: left, y: r.y, w: ww, h: rowHeight }); left += ww; }
    return { x: r.x, y: r.y + rowHeight, w: r.w, height: r.height - rowHeight };
  }
  function label(text, box) {
    const room = Math.floor((box.w - 6) / 6.5);
    if (room < 3 || box.h < 13) return null;
    return text.length > room ? text.slice(0, room - 1) + "…" : text;
  }
  function drawCells(node, rect, into) {
    for (const placed of squarify(cellsOf(node), rect)) {
      const { cell } = placed, child = cell.node;
      const leaf = cell.own || !child.children.length;
      const t = cell.own ? sum({ own: child.own, children: [] }) : sum(child);
      const g = s("g", { class: leaf ? "cell leaf" : "cell group", "data-tag": child.id, "data-own": cell.own ? "1" : null,
        "data-questions": t.questions, tabindex: 0, role: "button" },
      s("title", { text: describe(child, t) + (cell.own ? "\n(its own questions, not its children's)" : "") }));
      const good = goodness(t);
      const box = s("rect", { x: placed.x + 0.5, y: placed.y + 0.5, width: Math.max(placed.w - 1, 0), height: Math.max(placed.h - 1, 0),
        rx: 2, class: !t.questions ? "nodata empty" : good === null ? "nodata" : null,
        fill: good === null ? null : `hsl(${Math.round(good * 120)}, 55%, 62%)` });
      g.append(box);
      const name = (cell.own ? `${child.name} (itself)` : child.name) + ` · ${fmt(t.questions)}`;
      const text = label(name, placed);
      if (text) g.append(s("text", { x: placed.x + 4, y: placed.y + 12, text }));
      g.addEventListener("click", (event) => { event.stopPropagation(); leaf ? listQuestions(child) : zoomTo(child); });
      g.addEventListener("keydown", (event) => { if (event.key === "Enter") g.dispatchEvent(new MouseEvent("click")); });
      into.append(g);
      const inner = { x: placed.x + MAP.pad, y: placed.y + MAP.header, w: placed.w - 2 * MAP.pad, h: placed.h - MAP.header - MAP.pad };
      if (!leaf && inner.w > 8 && inner.h > 8) drawCells(child, inner, into);  // nested, until cells get too small
    }
  }
  function treemap() {
    const svg = s("svg", { id: "treemap", viewBox: `0 0 ${MAP.width} ${MAP.height}`, role: "img",
      "aria-label": `treemap of ${view.zoom.path || "all tags"}` });
    drawCells(view.zoom, { x: 0, y: 0, w: MAP.width, h: MAP.height }, svg);
    return svg;
  }

  // -- bar charts -------------------------------------------------------------------------------------------
  function bars(id, title, entries) {
    const width = 460, height = 150, base = 120, max = Math.max(1, ...entries.map(([, n]) => n));
    const step = width / entries.length;
    const svg = s("svg", { id, class: "hist", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
    entries.forEach(([name, n], i) => {
      const barHeight = (n / max) * (base - 14);
      svg.append(s("g", { class: "bar", "data-label": name, "data-count": n },
        s("title", { text: `${name}: ${fmt(n)}` }),
        s("rect", { x: i * step + 2, y: base - barHeight, width: step - 4, height: barHeight }),
        n ? s("text", { x: i * step + step / 2, y: base - barHeight - 3, "text-anchor": "middle", class: "n", text: fmt(n) }) : null,
        s("text", { x: i * step + step / 2, y: base + 13, "text-anchor": "middle", class: "axis", text: name.replace(/-\d+$/, "") })));
    });
    return h("figure", { class: "chart" }, h("figcaption", { text: title }), svg);
  }

  // -- the view ---------------------------------------------------------------------------------------------
  async function open(projectId) {
    state.view = "report"; state.project = projectId; app.nav();
    const visit = state.visit;
    show(h("p", { class: "muted", text: "Loading the report…" }));
    let data;
    try { data = await call("dataset_report", { project_id: projectId, breakdown: "tags" }); }
    catch (err) {  // too many tags for one treemap: the top-level tags, each over its subtree
      data = await call("dataset_report", { project_id: projectId });
    }
    if (visit === state.visit) render(data);
  }
  function render(data, keepZoom) {
    state.view = "report"; state.project = data.project_id; app.nav();
    const zoomed = keepZoom && view.zoom ? view.zoom.id : null;
    view.data = data; view.root = buildTree(data);
    view.zoom = (zoomed !== null && find(view.root, zoomed)) || view.root;
    if (view.colour === "duplicates" && data.overall.near_duplicate_rate === null) view.colour = "score";
    draw();
  }
  function find(node, id) {
    if (node.id === id) return node;
    for (const child of node.children) { const hit = find(child, id); if (hit) return hit; }
    return null;
  }
  function zoomTo(node) { view.zoom = node; draw(); }
  function draw() {
    const data = view.data, t = sum(view.zoom);
    const crumbs = [];
    for (let node = view.zoom; node; node = node.parent) crumbs.unshift(node);
    const trail = h("nav", { id: "crumbs", class: "crumbs", "aria-label": "zoom" }, crumbs.flatMap((node, i) =>
      i === crumbs.length - 1 ? h("strong", { text: node.name }) : [h("button", { class: "link", onclick: () => zoomTo(node), text: node.name }), " › "]));
    const colour = h("select", { id: "colour-by", "aria-label": "colour by", onchange: (e) => { view.colour = e.target.value; draw(); } },
      Object.entries(COLOURS).filter(([key]) => key !== "duplicates" || data.overall.near_duplicate_rate !== null)
        .map(([key, text]) => h("option", { value: key, selected: key === view.colour, text: `colour: ${text}` })));
    const dupButton = data.overall.near_duplicate_rate === null ? h("button", { id: "compute-duplicates", onclick: loadDuplicates,
      text: "Compute near-duplicate rates" }) : null;
    const facts = [["questions", fmt(t.questions)], ["answered", fmt(t.answered)], ["failed", fmt(t.failed)],
      ["held out", fmt(t.held_out)], ["scored", fmt(t.answered - t.unscored)],
      ["mean judge score", meanScore(t) === null ? "–" : meanScore(t).toFixed(2)],
      ["with reasoning", pct(t.answered ? t.with_reasoning / t.answered : null)],
      ["near-duplicates", t.dupKnown && t.questions ? pct(t.removable / t.questions) : "–"]];
    if (view.zoom === view.root && data.tag_id === null) {
      facts.push(["cost per 1,000 answers", data.cost_per_1000_answers === null ? "–" : "$" + data.cost_per_1000_answers.toFixed(4)],
        ["decontamination matches", fmt(data.overall.contamination_matched)]);
    }
    const scoreEntries = SCORES.map((k) => [k, t.scores[k] || 0]).concat([["none", t.unscored]]);
    show(...[h("h1", {}, `Report: ${data.project_name}`, data.breakdown === "tags" ? null
      : h("span", { class: "muted", text: " (top-level tags only: the tree is too large to draw whole)" })),
    trail, h("div", { id: "report-facts", class: "facts" }, facts.map(([k, v]) => h("div", { "data-fact": k }, h("span", { text: k }), v))),
    h("div", { class: "filters" }, colour, dupButton, h("span", { class: "legend" }, h("span", { class: "swatch bad" }), "worse",
      h("span", { class: "swatch good" }), "better", h("span", { class: "swatch nodata" }), "no data")),
    treemap(),
    h("p", { class: "help", text: "Area: questions (an empty leaf as one). Click a tag with children to zoom in, a leaf to list its questions." }),
    h("section", { id: "report-questions" }),
    h("div", { class: "charts" }, bars("hist-score", "Judge scores", scoreEntries),
      LENGTHS.map(([key, title]) => bars(`hist-${key}`, title, Object.entries(t.lengths[key] || {})))),
    duplicateTable()].filter(Boolean));  // replaceChildren would show a null as the text "null"
  }
  function leaves(node) {
    return node.children.length ? [...(node.own && node.own.questions ? [node] : []), ...node.children.flatMap(leaves)] : [node];
  }
  function duplicateTable() {
    if (view.data.overall.near_duplicate_rate === null) return null;
    const rows = leaves(view.zoom).filter((n) => n.own && n.own.questions)
      .map((n) => [n, n.own.near_duplicate_rate]).sort((a, b) => b[1] - a[1]);
    return h("section", {}, h("h2", { text: "Near-duplicate rate per tag (lexical)" }),
      h("table", { id: "dup-rates" }, h("tr", {}, ["tag", "questions", "near-duplicates"].map((x) => h("th", { text: x }))),
        rows.map(([n, rate]) => h("tr", { "data-tag": n.id }, h("td", { text: n.path }), h("td", { text: fmt(n.own.questions) }),
          h("td", { text: pct(rate) })))));
  }
  async function loadDuplicates() {
    const visit = state.visit;
    const data = await call("dataset_report", { project_id: view.data.project_id, breakdown: view.data.breakdown,
      near_duplicates: true, ...(view.data.tag_id !== null ? { tag_id: view.data.tag_id } : {}) });
    if (visit === state.visit) { view.colour = "duplicates"; render(data, true); }
  }
  async function listQuestions(node) {
    const pane = document.getElementById("report-questions");
    const visit = state.visit;
    const page = await call("review_dataset", { project_id: view.data.project_id, tag_id: node.id, limit: 50 });
    if (visit !== state.visit || !pane.isConnected) return;
    pane.replaceChildren(h("h2", {}, `Questions of ${node.path} (${fmt(page.total)})`, " ",
      h("button", { id: "review-tag", onclick: () => app.openReview(view.data.project_id, node.id), text: "Review them →" })),
    h("div", { id: "report-rows" }, page.questions.map((q) => h("div", { class: "row", "data-qid": q.id },
      h("span", { class: "qid", text: `#${q.id}` }), h("span", { class: "text", title: q.text, text: q.text }),
      q.answered ? null : h("span", { class: "badge warn", text: "unanswered" }),
      q.score !== null && q.score !== undefined ? h("span", { class: "badge", text: `score ${q.score}` }) : null))),
    ...(page.total > page.questions.length ? [h("p", { class: "muted", text: `The first ${page.questions.length}; review them for all.` })] : []));
    pane.scrollIntoView({ block: "nearest" });
  }

  // -- the dashboard's charts: samples of get_progress while the page polls ---------------------------------
  function line(id, title, points, unit) {
    if (!points.length) {
      return h("figure", { class: "chart" }, h("figcaption", { text: title }), h("p", { id, class: "muted", text: "Nothing to draw." }));
    }
    const width = 460, height = 120, top = 22, base = 100;
    const maxT = Math.max(1, ...points.map((p) => p.t)), maxV = Math.max(...points.map((p) => p.v), 0) || 1;
    const xy = points.map((p) => `${((p.t / maxT) * (width - 10)).toFixed(1)},${(base - (p.v / maxV) * (base - top)).toFixed(1)}`);
    const last = points[points.length - 1].v;
    return h("figure", { class: "chart" }, h("figcaption", { text: `${title} · now ${unit(last)}` }),
      s("svg", { id, class: "trend", viewBox: `0 0 ${width} ${height}`, "data-points": points.length, role: "img", "aria-label": title },
        s("line", { x1: 0, y1: base, x2: width, y2: base, class: "axis-line" }),
        s("polyline", { points: xy.join(" ") }),  // at least two points: a step, or the start and a sample
        s("text", { x: 2, y: 12, class: "axis", text: `max ${unit(maxV)}` }),
        s("text", { x: width - 4, y: base + 14, "text-anchor": "end", class: "axis", text: `${Math.round(maxT)} s` })));
  }
  function trend(progress) {
    let list = samples.get(progress.job_id);
    if (!list) { list = [{ t: 0, calls: 0, cost: null }]; samples.set(progress.job_id, list); }  // the job's start
    if (progress.elapsed_seconds > list[list.length - 1].t) {
      list.push({ t: progress.elapsed_seconds, calls: progress.calls_done, cost: progress.cost });
      if (list.length > MAX_SAMPLES) list.splice(1, 1);
    }
    const rates = list.slice(1).flatMap((p, i) => {  // a step per interval between two samples: its mean rate
      const v = ((p.calls - list[i].calls) / Math.max(p.t - list[i].t, 1e-3)) * 60;
      return [{ t: list[i].t, v }, { t: p.t, v }];
    });
    const priced = list.filter((p) => p.cost !== null && p.cost !== undefined).map((p) => ({ t: p.t, v: p.cost }));
    const costs = priced.length ? [{ t: 0, v: 0 }, ...priced] : [];
    return h("section", { id: "trend", class: "charts", "data-samples": list.length - 1 },
      line("trend-calls", "Calls per minute", rates, (v) => fmt(Math.round(v))),
      line("trend-cost", "Cost over time" + (costs.length ? "" : " (no known price)"), costs, (v) => "$" + v.toFixed(4)));
  }

  return { open, render, trend };
};
