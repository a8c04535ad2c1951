// treedistill's review app and progress dashboard. One file for two hosts: inside an MCP Apps host it speaks
// JSON-RPC over postMessage (tool calls go through the host); opened at /ui/ by `treedistill serve --http` it
// calls the same tools through the server's JSON endpoint. Model text is only ever set as textContent, or rendered
// as sanitised Markdown by markdown.js. The Report view and the dashboard's charts live in report.js.
"use strict";
(function () {
  const TERMINAL = ["completed", "completed_with_failures", "cancelled", "failed"];
  const PAGE = 200;  // questions per page, unless a host delivered a page with its own limit
  const TOKEN_KEY = "treedistill-token";
  const LOW_SCORE = 7;  // a judge score below this is flagged, unless the score_below filter sets the bound
  const main = document.getElementById("main");
  const statusLine = document.getElementById("status");
  const STYLE_FILTERS = [["question_type", "type"], ["difficulty", "difficulty"], ["audience", "audience"]];
  const state = { view: null, project: null, tag: null, filter: "all", below: LOW_SCORE, offset: 0, limit: PAGE, page: null,
    styles: {}, steeringShown: null,
    sel: -1, answer: null, reasoningOpen: false, editing: false, job: null, pollTimer: null, hostMode: false,
    visit: 0, pageRequest: 0 };  // visit: counts navigations, so a reply that arrives after the user left its view is dropped

  // -- building DOM without HTML strings --------------------------------------------------------------------
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (key === "class") el.className = value;
      else if (key === "text") el.textContent = String(value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }
  function show(...nodes) { main.replaceChildren(...nodes); resized(); }
  function say(text, error) { statusLine.textContent = text || ""; statusLine.className = error ? "error" : ""; }
  const NUMBER = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });  // toLocaleString builds one per call
  const fmt = (n) => (typeof n === "number" ? NUMBER.format(n) : String(n));
  function duration(s) {
    if (s === null || s === undefined) return "–";
    s = Math.round(s); const m = Math.floor(s / 60), hrs = Math.floor(m / 60);
    return hrs ? `${hrs}h ${m % 60}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
  }

  // -- transport: the MCP Apps host, or the HTTP endpoint --------------------------------------------------
  const pending = new Map();
  let nextId = 1;
  function hostRequest(method, params) {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      window.parent.postMessage({ jsonrpc: "2.0", id, method, params }, "*");
    });
  }
  function hostNotify(method, params) { window.parent.postMessage({ jsonrpc: "2.0", method, params }, "*"); }
  window.addEventListener("message", (event) => {
    if (event.source !== window.parent || window.parent === window) return;
    const msg = event.data;
    if (!msg || msg.jsonrpc !== "2.0") return;
    if (msg.id !== undefined && !msg.method) {
      const waiter = pending.get(msg.id);
      if (!waiter) return;
      pending.delete(msg.id);
      if (msg.error) waiter.reject(new Error(msg.error.message || "host error")); else waiter.resolve(msg.result);
      return;
    }
    if (msg.method === "ui/notifications/tool-result") onToolResult(msg.params || {});
    else if (msg.method === "ui/notifications/tool-input") state.toolInput = (msg.params || {}).arguments || {};
    else if (msg.method === "ui/resource-teardown" && msg.id !== undefined) {
      window.parent.postMessage({ jsonrpc: "2.0", id: msg.id, result: {} }, "*");
    } else if (msg.id !== undefined) {
      window.parent.postMessage({ jsonrpc: "2.0", id: msg.id, error: { code: -32601, message: "unsupported" } }, "*");
    }
  });

  async function httpCall(name, args) {
    const headers = { "Content-Type": "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch("api/call", { method: "POST", headers, credentials: "omit", cache: "no-store",
      body: JSON.stringify({ name, arguments: args }) });
    if (response.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      askToken(!!token);
      throw new Error("the server needs its bearer token");
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}: ${(await response.text()).slice(0, 300)}`);
    return response.json();
  }
  // The token form replaces the view; once a token is entered the view is built again with it.
  function askToken(wasWrong) {
    if (document.getElementById("token-form")) return;
    stopPolling(); state.visit++;
    const input = h("input", { id: "token", type: "password", autocomplete: "off", placeholder: "bearer token" });
    const form = h("form", { id: "token-form", onsubmit: (event) => {
      event.preventDefault();
      if (!input.value.trim()) return;
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      route();
    } },
    h("h1", { text: "This server needs its bearer token" }),
    h("p", { class: "muted", text: (wasWrong ? "That token was refused. " : "") +
      "Enter the token the server was started with (TREEDISTILL_TOKEN or --token). It is kept in this tab " +
      "only (sessionStorage) and sent in the Authorization header, never in a URL." }),
    input, h("button", { type: "submit", text: "Continue" }));
    show(form); input.focus();
  }

  async function call(name, args) {
    say(`${name}…`);
    let result;
    try {
      result = state.hostMode ? await hostRequest("tools/call", { name, arguments: args || {} })
        : await httpCall(name, args || {});
    } catch (err) { say(`${name}: ${err.message}`, true); throw err; }
    if (result.isError) {
      const text = (result.content || []).map((c) => c.text || "").join(" ") || "tool error";
      say(`${name}: ${text}`, true);
      throw new Error(text);
    }
    say("");
    if (result.structuredContent) return result.structuredContent;
    const text = (result.content || []).find((c) => c.type === "text");
    return text ? JSON.parse(text.text) : {};
  }

  function resized() {
    if (!state.hostMode) return;
    requestAnimationFrame(() => hostNotify("ui/notifications/size-changed", {
      width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight }));
  }

  // -- what a tool result shows -----------------------------------------------------------------------------
  function onToolResult(result) {
    let data = result.structuredContent;
    if (!data) {
      const text = (result.content || []).find((c) => c.type === "text");
      try { data = text ? JSON.parse(text.text) : null; } catch (err) { data = null; }
    }
    if (result.isError || !data) { show(h("p", { class: "muted", text: "The tool returned no data to show." })); return; }
    if (Array.isArray(data.questions) && data.counts) { enterReview(data.project_id, data); return; }
    if (window.TreedistillEval && window.TreedistillEval.isReport(data)) {  // get_evaluation: the tree by its grades
      window.TreedistillEval.preselect(data); enterReview(data.project_id); return;
    }
    if (data.overall && Array.isArray(data.tags)) { report.render(data); return; }
    if (data.job_id !== undefined && data.job_id !== null) {
      if (data.tags && typeof data.tags === "object") showDashboard(data); else openDashboard(data.job_id);
      return;
    }
    if (data.job_id === null) { show(h("p", { text: data.message || "Nothing to do." })); return; }
    show(h("p", { class: "muted", text: "Nothing to show for this result." }));
  }

  // -- navigation (browser) -------------------------------------------------------------------------------
  function nav() {
    const links = [h("a", { href: "#", text: "Projects" })];
    if (state.project) {
      links.push(h("a", { href: `#review/${state.project}`, text: "Review" }),
        h("a", { href: `#pairs/${state.project}`, text: "Pairs" }),
        h("a", { href: `#jobs/${state.project}`, text: "Jobs" }), h("a", { href: `#report/${state.project}`, text: "Report" }));
    }
    document.getElementById("nav").replaceChildren(...(state.hostMode ? [] : links));
  }
  function route() {
    stopPolling(); state.visit++;
    const [view, id] = location.hash.replace(/^#/, "").split("/");
    const number = Number(id) || null;
    const shown = view === "review" && number ? enterReview(number)
      : view === "report" && number ? report.open(number)
      : view === "pairs" && number ? showPairs(number)
      : view === "dashboard" && number ? openDashboard(number)
        : view === "jobs" ? showJobs(number) : showProjects();
    shown.catch(() => {});  // the status line already says what failed
  }

  async function showProjects() {
    state.view = "projects"; state.project = null; nav();
    const data = await call("list_projects", {});
    const rows = data.projects.map((p) => h("tr", {},
      h("td", {}, h("a", { href: `#review/${p.id}`, text: p.name })), h("td", { text: p.topic }),
      h("td", { text: fmt(p.tags) }), h("td", { text: fmt(p.questions) }), h("td", { text: fmt(p.answers) }),
      h("td", { text: fmt(p.input_tokens + p.output_tokens) }),
      h("td", {}, h("a", { href: `#jobs/${p.id}`, text: "jobs" }))));
    show(h("h1", { text: "Projects" }), rows.length ? h("table", {},
      h("tr", {}, ["name", "topic", "tags", "questions", "answers", "tokens", ""].map((t) => h("th", { text: t }))),
      rows) : h("p", { class: "muted", text: "No projects yet: create one with create_project or treedistill distill." }));
  }

  async function showJobs(projectId) {
    state.view = "jobs"; state.project = projectId; nav();
    const data = await call("list_jobs", projectId ? { project_id: projectId } : {});
    const rows = data.jobs.map((j) => h("tr", {},
      h("td", {}, h("a", { href: `#dashboard/${j.job_id}`, text: `job ${j.job_id}` })),
      h("td", {}, h("span", { class: `status-badge ${j.status}`, text: j.status })), h("td", { text: j.stage }),
      h("td", { text: `${fmt(j.calls_done)} done, ${fmt(j.calls_failed)} failed` }),
      h("td", { text: duration(j.elapsed_seconds) })));
    show(h("h1", { text: "Jobs" }), rows.length ? h("table", {},
      h("tr", {}, ["job", "status", "stage", "calls", "elapsed"].map((t) => h("th", { text: t }))), rows)
      : h("p", { class: "muted", text: "No jobs for this project." }));
  }

  // -- preference pairs: the teacher's answer and the rival response side by side --------------------------
  const PAIR_FILTERS = [["all", "all pairs"], ["kept", "kept (exported)"], ["rival_chosen", "rival chosen"],
    ["within_margin", "within the margin"], ["unjudged", "not judged yet"]];
  const PAIRS_PAGE = 20;
  async function showPairs(projectId) {
    if (state.view !== "pairs" || state.project !== projectId) { state.pairFilter = "all"; state.pairOffset = 0; }
    state.view = "pairs"; state.project = projectId; nav();
    const visit = state.visit;
    const data = await call("list_preference_pairs", { project_id: projectId, filter: state.pairFilter,
      limit: PAIRS_PAGE, offset: state.pairOffset });
    if (visit !== state.visit) return;
    const c = data.counts;
    const filter = h("select", { id: "pair-filter", "aria-label": "filter", onchange: (e) => {
      state.pairFilter = e.target.value; state.pairOffset = 0; showPairs(projectId); } },
    PAIR_FILTERS.map(([value, label]) => h("option", { value, selected: value === state.pairFilter, text: label })));
    const last = Math.min(data.offset + data.pairs.length, data.total);
    const pager = h("div", { class: "pager" },
      h("button", { id: "pairs-prev", disabled: data.offset === 0, text: "‹ previous", onclick: () => {
        state.pairOffset = Math.max(0, data.offset - PAIRS_PAGE); showPairs(projectId); } }),
      h("span", { id: "pairs-range", text: data.total ? `${data.offset + 1}–${last} of ${data.total}` : "none" }),
      h("button", { id: "pairs-next", disabled: last >= data.total, text: "next ›", onclick: () => {
        state.pairOffset = data.offset + PAIRS_PAGE; showPairs(projectId); } }));
    show(h("h1", { text: "Preference pairs" }),
      h("div", { id: "pairs-summary", class: "meta", text: `${fmt(c.kept)} kept (${fmt(c.rival_chosen)} with the rival ` +
        `chosen) · ${fmt(c.within_margin)} within the margin · ${fmt(c.unjudged)} not judged yet` }),
      h("div", { class: "filters" }, filter), pager,
      data.pairs.length ? h("div", { id: "pairs" }, data.pairs.map(pairCard)) : h("p", { class: "muted", text:
        "No pairs here. make_preference_pairs (or auto_distill with preference=true) makes them." }));
  }
  function pairCard(p) {
    const side = (who, label, answer, reasoning, model, score, rationale) => {
      const verdict = p.chosen === who ? h("span", { class: "badge ok verdict", text: "chosen" })
        : p.chosen ? h("span", { class: "badge bad verdict", text: "rejected" }) : null;
      return h("section", { class: `pair-side${p.chosen === who ? " chosen" : ""}`, "data-side": who },
        h("div", { class: "pair-head" }, h("strong", { text: label }), h("span", { class: "meta", text: model }),
          h("span", { class: "badge score", text: score === null ? "unscored" : `${score}/10` }), verdict),
        h("div", { class: "text-block response", text: answer }),
        reasoning ? h("details", { ontoggle: resized }, h("summary", { text: `Reasoning (${fmt(reasoning.length)} characters)` }),
          h("div", { class: "text-block reasoning", text: reasoning })) : h("div", { class: "meta", text: "No reasoning." }),
        rationale ? h("div", { class: "meta rationale", text: `Judge: ${rationale}` }) : null);
    };
    const judged = p.judged_at ? ` · judge ${p.judge_model} · margin ${p.margin}` +
      (p.chosen ? "" : " · within the margin: not exported") : " · not judged yet";
    return h("article", { class: "pair", "data-qid": p.question_id },
      h("div", { class: "meta", text: `#${p.question_id} · ${p.tag_path}${judged}` }),
      h("h2", { class: "text-block", text: p.question }),
      h("div", { class: "pair-cols" },
        side("teacher", "Teacher", p.teacher_answer, p.teacher_reasoning, p.teacher_model, p.teacher_score, p.teacher_rationale),
        side("rival", "Rival", p.rival_answer, p.rival_reasoning, p.rival_model, p.rival_score, p.rival_rationale)));
  }

  // -- review ----------------------------------------------------------------------------------------------
  async function enterReview(projectId, firstPage, tagId) {
    const fresh = state.project !== projectId || state.view !== "review";
    state.view = "review"; state.project = projectId; nav();
    if (fresh) { state.tag = tagId || null; state.offset = 0; state.limit = PAGE; state.sel = -1; state.answer = null; state.styles = {}; }
    state.steeringShown = null;
    const layout = h("div", { class: "cols" }, h("nav", { id: "tree", "aria-label": "tag tree" }),
      h("section", { id: "list" }), h("article", { id: "detail" }));
    show(h("h1", { id: "review-title", text: "Review" }), h("div", { id: "summary", class: "meta" }),
      h("details", { id: "steering", ontoggle: (e) => { if (e.currentTarget.open) loadPrompts(); } },
        h("summary", { text: "Guidance, styles and prompts" }), h("div", { id: "steering-body" }),
        h("div", { id: "prompts" })), layout,
      h("p", { class: "help" }, "Keys: ", h("kbd", { text: "j" }), "/", h("kbd", { text: "k" }), " next/previous, ",
        h("kbd", { text: "1" }), "–", h("kbd", { text: "5" }), " rate, ", h("kbd", { text: "0" }), " clear rating, ",
        h("kbd", { text: "c" }), " confirm, ", h("kbd", { text: "r" }), " reasoning, ", h("kbd", { text: "e" }),
        " edit, ", h("kbd", { text: "n" }), "/", h("kbd", { text: "p" }), " next/previous page"));
    if (firstPage) { state.filter = firstPage.filter; state.tag = firstPage.tag_id; state.offset = firstPage.offset;
      state.styles = Object.assign({}, firstPage.styles || {});
      state.limit = firstPage.limit || PAGE; state.pageRequest++;
      if (firstPage.score_below) state.below = firstPage.score_below; renderPage(firstPage); }
    else await loadPage();
    loadTree();
  }

  async function loadTree(tagId, into) {
    const args = { project_id: state.project, max_tags: 400 };
    if (tagId) args.tag_id = tagId;
    const tree = await call("get_tree", args);
    const list = h("ul", {}, (tree.roots || []).map(treeItem));
    if (into) { into.replaceWith(list); return; }
    const all = h("button", { class: "tag" + (state.tag ? "" : " sel"), "data-tag": "", onclick: () => pickTag(null) },
      "All questions", h("span", { class: "count", text: fmt(tree.question_count) }));
    const pane = document.getElementById("tree");
    if (pane) pane.replaceChildren(h("ul", {}, h("li", {}, all)), list);
    if (pane && window.TreedistillEval) await window.TreedistillEval.attach(pane, state.project, call, h).catch(() => {});
    resized();
  }
  function subtreeCount(node) {
    return node.questions + (node.children || []).reduce((sum, child) => sum + subtreeCount(child), 0);
  }
  function partial(node) { return node.hidden_children > 0 || (node.children || []).some(partial); }
  function treeItem(node) {
    const more = node.hidden_children ? h("button", { class: "tag muted", onclick: (event) =>
      loadTree(node.id, event.currentTarget.parentElement.querySelector("ul.more")),
      text: `+ ${node.hidden_children} more` }) : null;
    return h("li", {}, h("button", { class: "tag" + (state.tag === node.id ? " sel" : ""), "data-tag": node.id,
      title: node.path, onclick: () => pickTag(node.id) }, node.name,
      h("span", { class: "count", text: fmt(subtreeCount(node)) + (partial(node) ? "+" : "") })),
      node.children && node.children.length ? h("ul", {}, node.children.map(treeItem)) : null,
      more, more ? h("ul", { class: "more" }) : null);
  }
  function pickTag(tagId) {
    state.tag = tagId; state.offset = 0; state.sel = -1;
    document.querySelectorAll("#tree button.tag").forEach((b) =>
      b.classList.toggle("sel", b.dataset.tag === String(tagId || "")));
    loadPage();
  }

  async function loadPage(keepSelection) {
    const args = { project_id: state.project, filter: state.filter, limit: state.limit, offset: state.offset };
    if (state.tag) args.tag_id = state.tag;
    if (state.filter === "score_below") args.score_below = state.below;
    for (const [name] of STYLE_FILTERS) if (state.styles[name]) args[name] = state.styles[name];
    const request = ++state.pageRequest;
    const page = await call("review_dataset", args);
    if (request !== state.pageRequest || state.view !== "review") return;  // a newer page was asked for meanwhile
    if (!page.questions.length && page.total > 0 && page.offset >= page.total) {
      // The last rows left the filter (say, rated under "unrated"): show the last page that still has rows.
      state.offset = Math.floor((page.total - 1) / state.limit) * state.limit;
      await loadPage(keepSelection);
      return;
    }
    renderPage(page, keepSelection);
  }

  function renderPage(page, keepSelection) {
    state.page = page;
    document.getElementById("review-title").textContent = `Review: ${page.project_name}`;
    const c = page.counts;
    document.getElementById("summary").textContent = `${page.tag_path || "all tags"} · ${fmt(c.questions)} questions, ` +
      `${fmt(c.answered)} answered, ${fmt(c.rated)} rated, ${fmt(c.confirmed)} confirmed, ${fmt(c.scored)} scored`;
    const filter = h("select", { id: "filter", "aria-label": "filter", onchange: (e) => {
      state.filter = e.target.value; state.offset = 0; state.sel = -1; loadPage(); } },
      [["all", "all"], ["unanswered", "unanswered"], ["answered", "answered"], ["unrated", "unrated"],
        ["unconfirmed", "unconfirmed"], ["score_below", "score below…"], ["near_duplicates", "near-duplicates"]]
        .map(([value, label]) => h("option", { value, selected: value === state.filter, text: label })));
    const below = h("input", { id: "below", type: "number", min: 1, max: 11, value: state.below, "aria-label": "score below",
      hidden: state.filter !== "score_below",
      onchange: (e) => { state.below = Number(e.target.value) || LOW_SCORE; if (state.filter === "score_below") loadPage(); } });
    const styleFilters = STYLE_FILTERS.filter(([name]) => (page.style_values || {})[name] && page.style_values[name].length)
      .map(([name, label]) => h("select", { id: `style-${name}`, "aria-label": label, onchange: (e) => {
        state.styles[name] = e.target.value || null; state.offset = 0; state.sel = -1; loadPage(); } },
        h("option", { value: "", text: `any ${label}` }),
        page.style_values[name].map((value) => h("option", { value, selected: value === state.styles[name], text: value }))));
    renderSteering(page);
    const end = Math.min(page.offset + page.questions.length, page.total);
    const pager = h("div", { class: "pager" },
      h("button", { id: "prev-page", disabled: page.offset === 0, onclick: () => turn(-1), text: "‹ prev" }),
      h("span", { id: "range", text: page.total ? `${fmt(page.offset + 1)}–${fmt(end)} of ${fmt(page.total)}` : "none" }),
      h("button", { id: "next-page", disabled: end >= page.total, onclick: () => turn(1), text: "next ›" }));
    const lowScore = state.filter === "score_below" ? state.below : LOW_SCORE;
    let lastGroup = null;
    const rows = [];
    page.questions.forEach((q, index) => {
      if (q.group && q.group !== lastGroup) { lastGroup = q.group; rows.push(h("div", { class: "group-head", text: `group ${q.group}` })); }
      rows.push(h("div", { class: "row", "data-qid": q.id, "data-index": index, onclick: () => select(index) },
        h("span", { class: "qid", text: `#${q.id}` }), h("span", { class: "text", title: q.text, text: q.text }),
        q.question_type ? h("span", { class: "badge style", title: "type", text: q.question_type }) : null,
        q.difficulty ? h("span", { class: "badge style", title: "difficulty", text: q.difficulty }) : null,
        q.audience ? h("span", { class: "badge style", title: "audience", text: q.audience }) : null,
        q.answered ? null : h("span", { class: "badge warn", text: "unanswered" }),
        q.rating ? h("span", { class: "badge", text: `★${q.rating}` }) : null,
        q.score !== null && q.score !== undefined ? h("span", { class: "badge" + (q.score < lowScore ? " bad" : ""), text: `score ${q.score}` }) : null,
        q.confirmed ? h("span", { class: "badge ok", text: "✓" }) : null,
        q.keep ? h("span", { class: "badge ok", text: "keep" }) : null));
    });
    const list = document.getElementById("list");
    if (!list) return;
    const truncated = page.groups_found > page.groups_listed ? h("p", { id: "groups-truncated", class: "muted",
      text: `Showing the first ${fmt(page.groups_listed)} of ${fmt(page.groups_found)} near-duplicate groups: ` +
        "delete some duplicates to see the rest." }) : null;
    // replaceChildren turns a null child into the text "null": the notice goes in only when there is one.
    list.replaceChildren(h("div", { class: "filters" }, filter, below, styleFilters), ...(truncated ? [truncated] : []), pager,
      h("div", { id: "rows" }, rows.length ? rows : h("p", { class: "muted", text: "No questions match." })));
    const count = page.questions.length;
    const index = keepSelection && state.sel >= 0 ? Math.min(state.sel, count - 1) : (count ? 0 : -1);
    if (index >= 0) select(index, !keepSelection); else { state.sel = -1; document.getElementById("detail").replaceChildren(); }
    resized();
  }
  // The project's guidance, styles and effective prompts, built once per visit of a project's review.
  function weights(mix) {
    return Object.entries(mix || {}).map(([name, weight]) => `${name} ×${weight}`).join(", ") || "—";
  }
  function renderSteering(page) {
    const body = document.getElementById("steering-body");
    if (!body || state.steeringShown === page.project_id) return;
    state.steeringShown = page.project_id;
    const styles = page.question_styles || {};
    const answerStyle = page.answer_style;
    const facts = h("dl", { class: "steering-facts" },
      h("dt", { text: "Guidance" }), h("dd", { id: "guidance", class: "text-block", text: page.guidance || "none" }),
      h("dt", { text: "Question types" }), h("dd", { id: "style-types", text: weights(styles.types) }),
      h("dt", { text: "Difficulties" }), h("dd", { id: "style-difficulties", text: weights(styles.difficulties) }),
      h("dt", { text: "Audiences" }), h("dd", { id: "style-audiences", text: weights(styles.audiences) }),
      h("dt", { text: "Answer style" }), h("dd", { id: "answer-style", text: answerStyle ? [
        answerStyle.max_words ? `at most ${answerStyle.max_words} words` : null,
        (answerStyle.formats || []).join(", ") || null, answerStyle.notes || null].filter(Boolean).join(" · ") : "none" }));
    body.replaceChildren(facts);
  }
  // The effective prompts are asked for only when the section is opened (one call, once per visit).
  async function loadPrompts() {
    const pane = document.getElementById("prompts");
    if (!pane || pane.dataset.project === String(state.project)) return;
    pane.dataset.project = String(state.project);
    pane.replaceChildren(h("p", { class: "muted", text: "Loading prompts…" }));
    let result;
    try { result = await call("get_prompts", { project_id: state.project }); }
    catch (err) {  // the status line says why; opening the section again asks again
      delete pane.dataset.project; pane.replaceChildren(h("p", { class: "muted", text: "Prompts could not be loaded." }));
      return;
    }
    pane.replaceChildren(...result.prompts.map((prompt) => h("details", { class: "prompt", "data-kind": prompt.kind },
      h("summary", { text: `${prompt.kind}: ${prompt.source} (${prompt.version})` }),
      h("pre", { class: "text-block", text: prompt.template }))));
    resized();
  }

  function turn(direction) {
    const page = state.page;
    if (!page) return;
    const offset = state.offset + direction * state.limit;
    if (offset < 0 || offset >= page.total) return;
    state.offset = offset; state.sel = -1; loadPage();
  }

  async function select(index, scroll) {
    const page = state.page;
    if (!page || index < 0 || index >= page.questions.length) return;
    state.sel = index; state.editing = false;
    document.querySelectorAll("#rows .row").forEach((r) => r.classList.toggle("sel", Number(r.dataset.index) === index));
    const row = document.querySelector(`#rows .row[data-index="${index}"]`);
    if (row && scroll !== false) row.scrollIntoView({ block: "nearest" });
    const q = page.questions[index];
    const data = await call("get_answer", { project_id: state.project, question_id: q.id });
    const dialogue = data.dialogue_turns > 1 ?
      await call("get_dialogue", { project_id: state.project, question_id: q.id }) : null;
    if (state.sel !== index) return;  // another question was chosen meanwhile
    state.answer = data; state.dialogue = dialogue;
    renderDetail();
  }

  function renderDetail() {
    const { question, answer } = state.answer;
    const pane = document.getElementById("detail");
    if (!pane) return;
    const asked = [question.question_type, question.difficulty, question.audience].filter(Boolean).join(" · ");
    const parts = [h("div", { class: "meta", text: `#${question.id} · ${question.tag_path}` + (asked ? ` · ${asked}` : "") }),
      h("h2", { id: "question", class: "text-block", text: question.text })];
    if (!answer) {
      parts.push(h("p", { class: "muted", text: "Not answered yet." }),
        h("div", { class: "actions" }, h("button", { id: "answer-now", onclick: () => act("answer_question",
          { project_id: state.project, question_id: question.id }), text: "Answer it now" }),
        deleteButton(question)));
      pane.replaceChildren(...parts); resized(); return;
    }
    const rating = h("span", { class: "actions", id: "rating" }, "Rating:", [1, 2, 3, 4, 5].map((n) =>
      h("button", { class: answer.rating === n ? "on" : "", "data-rating": n, onclick: () => rate(n), text: String(n) })),
      h("button", { "data-rating": 0, onclick: () => rate(null), text: "clear", disabled: answer.rating === null }));
    const confirm = h("button", { id: "confirm", class: answer.confirmed ? "on" : "", onclick: toggleConfirm,
      text: answer.confirmed ? "✓ confirmed" : "confirm" });
    parts.push(h("div", { class: "meta", id: "answer-meta", text: `${answer.model} · ${fmt(answer.input_tokens)} in / ` +
      `${fmt(answer.output_tokens)} out tokens · reasoning: ${answer.reasoning_source}` +
      (answer.edited_at ? ` · edited ${answer.edited_at}` : "") }), h("div", { class: "actions" }, rating, confirm));
    if (answer.score !== null && answer.score !== undefined) {
      parts.push(h("div", { id: "score" }, h("strong", { text: `Judge score ${answer.score}/10` }),
        answer.score_model ? h("span", { class: "meta", text: ` (${answer.score_model})` }) : null,
        answer.score_rationale ? h("div", { class: "text-block", text: answer.score_rationale }) : null));
    }
    if (state.editing) {
      const answerBox = h("textarea", { id: "edit-answer", "aria-label": "answer" });
      const reasoningBox = h("textarea", { id: "edit-reasoning", "aria-label": "reasoning" });
      answerBox.value = answer.answer; reasoningBox.value = answer.reasoning;
      parts.push(h("h2", { text: "Answer" }), answerBox, h("h2", { text: "Reasoning" }), reasoningBox,
        h("div", { class: "actions" }, h("button", { id: "save-edit", onclick: () => {
          const changes = { project_id: state.project, question_id: question.id };
          if (answerBox.value !== answer.answer) changes.answer = answerBox.value;
          if (reasoningBox.value !== answer.reasoning) changes.reasoning = reasoningBox.value;
          state.editing = false;
          if (changes.answer === undefined && changes.reasoning === undefined) { renderDetail(); return; }
          act("update_answer", changes);
        }, text: "Save" }), h("button", { onclick: () => { state.editing = false; renderDetail(); }, text: "Cancel" })));
    } else {
      const reasoning = h("details", { id: "reasoning-box", open: state.reasoningOpen,
        ontoggle: (e) => { state.reasoningOpen = e.target.open; resized(); } },
        h("summary", { text: `Reasoning (${fmt(answer.reasoning.length)} characters)` }),
        h("div", { id: "reasoning", class: "text-block markdown" }, window.treedistillMarkdown(answer.reasoning)));
      parts.push(h("h2", { text: "Answer" }),
        h("div", { id: "answer", class: "text-block markdown" }, window.treedistillMarkdown(answer.answer)), reasoning,
        h("div", { class: "actions" },
          h("button", { id: "edit", onclick: () => { state.editing = true; renderDetail(); }, text: "Edit" }),
          h("button", { id: "regenerate", onclick: (event) => ask(event.currentTarget.parentElement,
            "Ask the teacher for a new answer? The current one, its rating and its score are replaced.",
            () => act("answer_question", { project_id: state.project, question_id: question.id, regenerate: true })),
          text: "Regenerate" }),
          h("button", { id: "judge", onclick: () => act("score_answers", { project_id: state.project,
            question_ids: [question.id], rescore: true }), text: "Score with judge" }),
          deleteButton(question)));
    }
    if (!state.editing) parts.push(...dialogueTurns(state.dialogue));
    if (state.tag) parts.push(tagDeletion());
    pane.replaceChildren(...parts);
    resized();
  }

  // The later turns of a dialogue (turn 1 is the answer above), each reply's reasoning collapsed.
  function dialogueTurns(dialogue) {
    if (!dialogue || (dialogue.turns.length < 2 && !dialogue.ended)) return [];
    const parts = [h("h2", { id: "dialogue", text: `Dialogue (${dialogue.turns.length} turns)` })];
    dialogue.turns.slice(1).forEach((turn) => parts.push(h("section", { class: "turn", "data-turn": turn.number },
      h("div", { class: "meta", text: `Turn ${turn.number} · user` }),
      h("div", { class: "text-block turn-user", text: turn.user }),
      h("div", { class: "meta", text: `Turn ${turn.number} · ${turn.model || "assistant"}` }),
      h("div", { class: "text-block turn-assistant", text: turn.assistant }),
      h("details", { class: "turn-reasoning", ontoggle: resized },
        h("summary", { text: `Reasoning (${fmt(turn.reasoning.length)} characters)` }),
        h("div", { class: "text-block", text: turn.reasoning })))));
    if (dialogue.ended) parts.push(h("p", { id: "dialogue-ended", class: "muted", text: dialogue.ended }));
    return parts;
  }
  function deleteButton(question) {
    return h("button", { id: "delete-question", class: "danger", onclick: (event) => ask(
      event.currentTarget.parentElement, `Delete question #${question.id} and its answer?`,
      () => act("delete_question", { project_id: state.project, question_ids: [question.id] }, true)),
    text: "Delete question" });
  }
  // A confirmation step inside the page: hosts sandbox the app without modal dialogs.
  function ask(box, message, onYes) {
    box.replaceChildren(h("span", { class: "confirm-message", text: message }),
      h("button", { id: "confirm-yes", class: "danger", onclick: onYes, text: "Yes" }),
      h("button", { id: "confirm-no", onclick: () => renderDetail(), text: "No" }));
    resized();
  }
  function tagDeletion() {
    const box = h("div", { class: "actions", id: "tag-deletion" });
    box.append(h("button", { class: "danger", onclick: async () => {
      const preview = await call("delete_tag", { project_id: state.project, tag_id: state.tag, confirm: false });
      box.replaceChildren(h("span", { text: preview.message }), h("button", { id: "delete-tag-confirm", class: "danger",
        onclick: async () => {
          await call("delete_tag", { project_id: state.project, tag_id: state.tag, confirm: true });
          state.tag = null; state.offset = 0; state.sel = -1; loadTree(); loadPage();
        }, text: "Delete it" }), h("button", { onclick: () => renderDetail(), text: "Keep it" }));
    }, text: "Delete this tag…" }));
    return box;
  }
  async function act(tool, args, removed) {
    try { await call(tool, args); } catch (err) { return; }
    if (removed) state.answer = null;
    await loadPage(true);
  }
  function rate(n) {
    if (!state.answer || !state.answer.answer) return;
    act("rate_item", { project_id: state.project, question_id: state.answer.question.id, rating: n });
  }
  function toggleConfirm() {
    if (!state.answer || !state.answer.answer) return;
    act("confirm_item", { project_id: state.project, question_ids: [state.answer.question.id],
      confirmed: !state.answer.answer.confirmed });
  }

  document.addEventListener("keydown", (event) => {
    if (state.view !== "review" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (/^(INPUT|TEXTAREA|SELECT)$/.test((event.target.tagName || ""))) return;
    // While an answer is being edited a shortcut would re-render and throw the edit away (focus may have left
    // the textarea): only Save and Cancel end an edit.
    if (state.editing) return;
    const key = event.key;
    if (key === "j" || key === "ArrowDown") select(state.sel + 1);
    else if (key === "k" || key === "ArrowUp") select(state.sel - 1);
    else if (key >= "1" && key <= "5") rate(Number(key));
    else if (key === "0") rate(null);
    else if (key === "c") toggleConfirm();
    else if (key === "n") turn(1);
    else if (key === "p") turn(-1);
    else if (key === "e" && state.answer && state.answer.answer) { state.editing = true; renderDetail(); }
    else if (key === "r") { const box = document.getElementById("reasoning-box"); if (box) box.open = !box.open; }
    else return;
    event.preventDefault();
  });

  // -- progress dashboard -----------------------------------------------------------------------------------
  function stopPolling() { if (state.pollTimer) clearTimeout(state.pollTimer); state.pollTimer = null; }
  // The dashboard belongs to one visit: a get_progress reply or a poll timer from before the user navigated away
  // must not draw over the view shown now.
  async function openDashboard(jobId, visit = state.visit) {
    stopPolling();
    const progress = await call("get_progress", { job_id: jobId });
    if (visit === state.visit) showDashboard(progress);
  }
  const STAGE_KEYS = (value) => value && typeof value === "object" && !Array.isArray(value) &&
    typeof value.done === "number" && typeof value.total === "number";
  function factValue(key, value) {
    if (value === null || value === undefined) return "–";
    if (/seconds$/.test(key)) return duration(value);
    if (key === "cost" || /_cost$/.test(key)) return "$" + Number(value).toFixed(4);
    if (typeof value === "boolean") return value ? "yes" : "no";
    return fmt(value);
  }
  function factLabel(key) {
    const label = key.replace(/_seconds$/, "").replace(/_/g, " ");
    return label === "eta" ? "ETA" : label;
  }
  function showDashboard(progress) {
    stopPolling();
    state.view = "dashboard"; state.job = progress.job_id; state.project = progress.project_id; nav();
    const stages = [], facts = [];
    for (const [key, value] of Object.entries(progress)) {
      if (["job_id", "project_id", "status", "stage", "recent_errors", "params"].includes(key)) continue;
      if (STAGE_KEYS(value)) {
        const total = value.total || 0, pct = total ? Math.min(100, (100 * value.done) / total) : 0;
        const fail = total ? Math.min(100 - pct, (100 * (value.failed || 0)) / total) : 0;
        const fill = h("div", { class: "fill" }), failed = h("div", { class: "fail" });
        fill.style.width = pct + "%"; failed.style.left = pct + "%"; failed.style.width = fail + "%";
        const extra = Object.entries(value).filter(([k]) => !["done", "total"].includes(k))
          .map(([k, v]) => `${fmt(v)} ${k.replace(/_/g, " ")}`).join(", ");
        stages.push(h("div", { class: "stage", "data-stage": key }, h("strong", { text: key.replace(/_/g, " ") }),
          h("div", { class: "bar", role: "progressbar", "aria-valuenow": value.done, "aria-valuemax": total }, fill, failed),
          h("span", { text: `${fmt(value.done)} / ${fmt(total)}${extra ? " · " + extra : ""}` })));
      } else if (value && typeof value === "object" && !Array.isArray(value)) {
        for (const [sub, subValue] of Object.entries(value)) {
          if (typeof subValue !== "object") facts.push([`${factLabel(key)}: ${factLabel(sub)}`, factValue(sub, subValue)]);
        }
      } else if (!Array.isArray(value)) facts.push([factLabel(key), factValue(key, value)]);
    }
    const running = !TERMINAL.includes(progress.status);
    const failedSome = progress.calls_failed > 0 || progress.status === "completed_with_failures";
    const buttons = h("div", { class: "actions" },
      h("button", { id: "cancel-job", disabled: !running, onclick: () => jobAction("cancel_job"), text: "Cancel" }),
      h("button", { id: "resume-job", disabled: !["cancelled", "failed"].includes(progress.status),
        onclick: () => jobAction("resume_job"), text: "Resume" }),
      h("button", { id: "retry-job", disabled: !failedSome || progress.status === "cancelled",
        onclick: () => jobAction("retry_failed"), text: "Retry failed" }),
      h("button", { onclick: () => openDashboard(progress.job_id), text: "Refresh" }),
      state.hostMode ? null : h("a", { href: `#review/${progress.project_id}`, text: "Review the data →" }));
    const errors = progress.recent_errors || [];
    show(h("h1", {}, `Job ${progress.job_id} `, h("span", { id: "job-status", class: `status-badge ${progress.status}`,
      text: progress.status }), h("span", { class: "muted", text: ` · ${progress.stage}` })),
    h("div", { id: "stages" }, stages), report.trend(progress), buttons,
    h("div", { id: "facts", class: "facts" }, facts.map(([k, v]) => h("div", {}, h("span", { text: k }), v))),
    h("h2", { text: "Recent errors" }), errors.length ? h("ul", { class: "errors", id: "errors" },
      errors.map((e) => h("li", { text: e }))) : h("p", { class: "muted", id: "errors", text: "None." }),
    h("details", {}, h("summary", { text: "Job parameters" }),
      h("div", { class: "text-block", text: JSON.stringify(progress.params || {}, null, 2) })),
    h("p", { class: "help", text: running ? "Refreshes every 2 seconds while the job runs." : "The job has ended." }));
    const visit = state.visit;
    const poll = () => openDashboard(progress.job_id, visit).catch(() => {
      if (visit === state.visit) state.pollTimer = setTimeout(poll, 5000);
    });
    if (running) state.pollTimer = setTimeout(poll, 2000);
  }
  async function jobAction(tool) {
    const visit = state.visit;
    const progress = await call(tool, { job_id: state.job });
    if (visit === state.visit) showDashboard(progress);
  }

  // -- the Report view (report.js), given what it needs of the app -------------------------------------------
  const report = window.treedistillReport({ h, call, show, fmt, state, nav,
    openReview: (projectId, tagId) => {  // a tag's questions in the review view (no hashchange: pushState)
      if (!state.hostMode) history.pushState(null, "", `#review/${projectId}`);
      stopPolling(); state.visit++; state.view = null; enterReview(projectId, null, tagId).catch(() => {});
    } });

  // -- start ----------------------------------------------------------------------------------------------
  async function start() {
    const embedded = window.parent !== window;
    if (embedded) {
      state.hostMode = true;
      try {
        await Promise.race([hostRequest("ui/initialize", { protocolVersion: "2026-01-26",
          appInfo: { name: "treedistill", version: "1" }, appCapabilities: {} }),
        new Promise((_, reject) => setTimeout(() => reject(new Error("no MCP Apps host answered")), 5000))]);
        hostNotify("ui/notifications/initialized", {});
        const view = document.body.dataset.view;
        show(h("p", { class: "muted", text: view === "dashboard" ? "Waiting for the job…" : "Waiting for the tool result…" }));
        if ("ResizeObserver" in window) new ResizeObserver(resized).observe(document.body);
      } catch (err) { say(err.message, true); }
      // Framed by a page that is no MCP Apps host: nothing to fall back to (/ui/ sends frame-ancestors 'none').
      return;
    }
    window.addEventListener("hashchange", route);
    route();
  }
  start();
})();
