// The review app's evaluation picture: above the tag tree, choose a student's evaluation run (evaluate_model) and
// optionally a run to compare with; each tag of the run is coloured by its mean grade (red 1 to green 10) and gets
// a badge with the grade and the number of questions behind it, or, when comparing, the paired delta (marked *
// when its 95% interval excludes 0). app.js calls TreedistillEval.attach after drawing the tree, and hands a
// get_evaluation result to it (an MCP Apps host showing that tool's result). Text is only set as textContent.
"use strict";
window.TreedistillEval = (function () {
  let chosen = { project: null, run: "", compare: "" };

  function isReport(data) { return !!data && data.run_id !== undefined && Array.isArray(data.tags) && !!data.weakest; }
  function preselect(report) {
    chosen = { project: report.project_id, run: String(report.run_id),
      compare: report.comparison ? String(report.comparison.before_run_id) : "" };
  }
  function colour(score) { return `hsl(${Math.round((score - 1) / 9 * 120)}, 65%, 82%)`; }
  function interval(ci) { return ci ? `, 95% interval ${ci.low.toFixed(2)} to ${ci.high.toFixed(2)}` : ""; }

  function clear(pane) {
    pane.querySelectorAll("button.tag").forEach((b) => { b.style.backgroundColor = ""; b.style.color = ""; });
    pane.querySelectorAll(".eval-badge").forEach((badge) => badge.remove());
  }

  function paint(pane, report, h) {
    clear(pane);
    const deltas = new Map(((report.comparison || {}).tags || []).map((d) => [d.tag_id, d]));
    for (const tag of report.tags) {
      const button = pane.querySelector(`button.tag[data-tag="${tag.tag_id}"]`);
      if (!button) continue;
      button.style.backgroundColor = colour(tag.mean_score);
      button.style.color = "#1d2125";
      const delta = deltas.get(tag.tag_id);
      const sign = delta && delta.delta > 0 ? "+" : "";
      const badge = delta
        ? h("span", { class: "eval-badge count", "data-delta": delta.delta,
          text: `${sign}${delta.delta.toFixed(1)}${delta.significant ? "*" : ""} (${delta.questions})`,
          title: `${delta.before.toFixed(2)} → ${delta.after.toFixed(2)} on ${delta.questions} paired questions` +
            interval(delta.ci95) })
        : h("span", { class: "eval-badge count", "data-score": tag.mean_score,
          text: `${tag.mean_score.toFixed(1)} (${tag.questions})`,
          title: `mean grade ${tag.mean_score.toFixed(2)} on ${tag.questions} questions` + interval(tag.ci95) });
      button.append(badge);
    }
    const summary = pane.querySelector("#eval-summary");
    const overall = report.overall;
    const weakest = report.weakest.map((t) => t.tag_path).join(", ");
    summary.textContent = overall ? `${report.student_model.model}: mean ${overall.mean_score.toFixed(2)} on ` +
      `${overall.questions}, ${Math.round(overall.pass_share * 100)}% pass; weakest: ${weakest}` +
      (report.comparison && report.comparison.overall ? `; ${report.comparison.overall.delta > 0 ? "+" : ""}` +
        `${report.comparison.overall.delta.toFixed(2)} over run ${report.comparison.before_run_id}` : "")
      : "nothing graded yet";
  }

  async function attach(pane, projectId, call, h) {
    if (chosen.project !== projectId) chosen = { project: projectId, run: "", compare: "" };
    const runs = (await call("list_evaluations", { project_id: projectId })).runs;
    if (!runs.length) return;
    const options = (none) => [h("option", { value: "", text: none }), ...runs.map((run) =>
      h("option", { value: String(run.run_id), text: `run ${run.run_id}: ${run.student_model}` +
        (run.mean_score === null ? "" : ` (${run.mean_score})`) }))];
    const runSelect = h("select", { id: "eval-run", "aria-label": "colour tags by evaluation run" },
      options("student scores: none"));
    const compareSelect = h("select", { id: "eval-compare", "aria-label": "compare with run" },
      options("compare with: none"));
    runSelect.value = chosen.run; compareSelect.value = chosen.compare;
    runSelect.style.maxWidth = compareSelect.style.maxWidth = "100%";
    const refresh = async () => {
      chosen.run = runSelect.value; chosen.compare = compareSelect.value;
      if (!chosen.run) { clear(pane); pane.querySelector("#eval-summary").textContent = ""; return; }
      const args = { run_id: Number(chosen.run) };
      if (chosen.compare && chosen.compare !== chosen.run) args.compare_to = Number(chosen.compare);
      paint(pane, await call("get_evaluation", args), h);
    };
    runSelect.addEventListener("change", () => refresh().catch(() => {}));
    compareSelect.addEventListener("change", () => refresh().catch(() => {}));
    pane.querySelector("#eval-controls")?.remove();
    pane.prepend(h("div", { id: "eval-controls" }, runSelect, compareSelect, h("p", { id: "eval-summary",
      class: "muted" })));
    if (chosen.run) await refresh();
  }

  return { attach, isReport, preselect };
})();
