// driftline dashboard: history from /ui/history, then live rows from /ui/events (server-sent
// events). Charts are plain SVG drawn here: no library, nothing loaded from the internet.
"use strict";

const COLORS = ["#0969da", "#bc4c00", "#1a7f37", "#8250df", "#bf3989", "#6e7781"];
const state = { config: null, drift: new Map(), alerts: new Map(), ab: new Map() };
let pending = false;

const time = (iso) => Date.parse(iso);
const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });
const fmt = (v, digits = 3) => (v === null || v === undefined ? "–" : Number(v).toPrecision(digits));
const seconds = (s) => (s >= 3600 ? `${s / 3600} h` : s >= 60 ? `${s / 60} min` : `${s} s`);

// A row under a key already held replaces it unless it adds up fewer changes (`updates`: two
// A/B reports may cover the same newest event time, the later one counting more).
function keyed(map, outer, inner, row) {
  if (!map.has(outer)) map.set(outer, new Map());
  const held = map.get(outer).get(inner);
  if (!held || (row.updates ?? 0) >= (held.updates ?? 0)) map.get(outer).set(inner, row);
}

function add(kind, row) {
  if (kind === "drift") {
    keyed(state.drift, `${row.model_name}/${row.model_version}`, `${row.window_start}|${row.window_end}`, row);
  } else if (kind === "alert") {
    keyed(state.alerts, `${row.model_name}/${row.model_version}`, row.alert_id, row);
  } else if (kind === "ab") {
    keyed(state.ab, row.experiment, row.emitted_at, row);
  }
}

function svg(tag, attrs, parent) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

// One chart. series: [{name, color, points: [[t, y]], dashed}], band: [[t, lo, hi]],
// levels: [{y, label}], markers: [{t, text, kind}] (kind: CSS class, "alert-marker" if none); span: [t0, t1] shared by a section's charts.
function chart({ id, title, help, series, band = [], levels = [], markers = [], latest = "", span = null, xfmt = clock }) {
  const box = document.createElement("div");
  box.className = "chart";
  box.innerHTML = `<div class="title"></div><div class="help"></div>`;
  box.querySelector(".title").textContent = title;
  box.querySelector(".help").textContent = help;
  const W = 420, H = 170, L = 44, R = 8, T = 8, B = 20;
  const points = series.flatMap((s) => s.points);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, "data-chart": id, "data-points": points.length });
  box.appendChild(root);
  const ts = [...points.map((p) => p[0]), ...band.map((b) => b[0]), ...markers.map((m) => m.t)];
  const ys = [...points.map((p) => p[1]), ...band.flatMap((b) => [b[1], b[2]]), ...levels.map((l) => l.y)];
  if (ts.length === 0) {
    svg("text", { x: W / 2 - 30, y: H / 2 }, root).textContent = "no data yet";
  } else {
    let [t0, t1] = span || [Math.min(...ts), Math.max(...ts)];
    if (t1 === t0) [t0, t1] = [t0 - 1000, t1 + 1000];
    let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    const pad = (y1 - y0) * 0.08 || Math.abs(y1) * 0.1 || 0.1;
    [y0, y1] = [y0 >= 0 ? Math.max(0, y0 - pad) : y0 - pad, y1 + pad];  // counts stay above 0
    const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    const y = (v) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
    svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }, root);
    svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }, root);
    svg("text", { x: 2, y: T + 8 }, root).textContent = fmt(y1, 3);
    svg("text", { x: 2, y: H - B }, root).textContent = fmt(y0, 3);
    svg("text", { x: L, y: H - 5 }, root).textContent = xfmt(t0);
    svg("text", { x: W - R - 48, y: H - 5 }, root).textContent = xfmt(t1);
    if (band.length) {
      const upper = band.map((b) => `${x(b[0])},${y(b[2])}`);
      const lower = band.map((b) => `${x(b[0])},${y(b[1])}`).reverse();
      svg("polygon", { class: "band", points: [...upper, ...lower].join(" ") }, root);
    }
    for (const level of levels) {
      svg("line", { class: "level", x1: L, x2: W - R, y1: y(level.y), y2: y(level.y) }, root);
      svg("text", { x: W - R - 70, y: y(level.y) - 3 }, root).textContent = level.label;
    }
    for (const s of series) {
      const attrs = { fill: "none", stroke: s.color, "stroke-width": 1.6 };
      if (s.dashed) attrs["stroke-dasharray"] = "5 3";
      attrs.points = s.points.map((p) => `${x(p[0])},${y(p[1])}`).join(" ");
      svg("polyline", attrs, root);
      if (s.points.length === 1) svg("circle", { cx: x(s.points[0][0]), cy: y(s.points[0][1]), r: 2.5, fill: s.color }, root);
    }
    for (const m of markers) {
      const line = svg("line", { class: m.kind || "alert-marker", x1: x(m.t), x2: x(m.t), y1: T, y2: H - B }, root);
      svg("title", {}, line).textContent = m.text;
    }
  }
  const legend = document.createElement("div");
  legend.className = "legend";
  for (const s of series) {
    const item = document.createElement("span");
    item.innerHTML = `<i style="background:${s.color}"></i>`;
    item.append(s.name);
    legend.appendChild(item);
  }
  box.appendChild(legend);
  const last = document.createElement("div");
  last.className = "latest";
  last.textContent = latest;
  box.appendChild(last);
  return box;
}

const line = (rows, field, scale = 1) =>
  rows.filter((r) => r[field] !== null && r[field] !== undefined).map((r) => [time(r.window_end), r[field] * scale]);

function modelSection(key, rows, alerts) {
  const levels = state.config.alert_levels;
  const last = rows[rows.length - 1];
  const markers = alerts.map((a) => ({ t: time(a.window_end), text: `${a.metric} = ${fmt(a.value)}: ${a.message}` }));
  const section = document.createElement("div");
  section.className = "model";
  section.dataset.model = key;
  const heading = document.createElement("h3");
  heading.textContent = `${key}: ${rows.length} windows, last ending ${clock(time(last.window_end))}`;
  section.appendChild(heading);
  if (alerts.length) {
    const list = document.createElement("div");
    list.className = "alerts";
    list.textContent = `${alerts.length} alert(s); latest: ${markers[markers.length - 1].text}`;
    section.appendChild(list);
  }
  const grid = document.createElement("div");
  grid.className = "grid";
  const ends = rows.map((r) => time(r.window_end)).concat(markers.map((m) => m.t));
  const span = [Math.min(...ends), Math.max(...ends)];
  const domainBand = rows.filter((r) => r.domain_auc_threshold !== null).map((r) => [time(r.window_end), 0.5, r.domain_auc_threshold]);
  grid.append(
    chart({
      id: "ks_d", title: "Prediction drift: Kolmogorov-Smirnov D",
      help: "Largest gap between the distributions of predicted probabilities, window vs reference (0 = same). Dashed: alert level.",
      series: [{ name: "KS D", color: COLORS[0], points: line(rows, "ks_d") }],
      levels: [{ y: levels.ks_d, label: `alert ${levels.ks_d}` }], markers, span,
      latest: `latest D ${fmt(last.ks_d)}, p-value ${fmt(last.ks_p_value, 2)}`,
    }),
    chart({
      id: "domain_auc", title: "Feature drift: domain classifier AUC",
      help: "How well a classifier tells window texts from reference texts (0.5 = indistinguishable). Grey band: chance, up to the 95% null threshold.",
      series: [{ name: "domain AUC", color: COLORS[1], points: line(rows, "domain_auc") }],
      band: domainBand, levels: [{ y: levels.domain_auc, label: `alert ${levels.domain_auc}` }], markers, span,
      latest: `latest AUC ${fmt(last.domain_auc)} (threshold ${fmt(last.domain_auc_threshold)}), feature drift: ${last.feature_drift ?? "–"}`,
    }),
    chart({
      id: "mmd", title: "Feature drift: MMD² (incremental)",
      help: "Maximum mean discrepancy between window and reference feature rows, updated per event. Dashed: its 95% null level for the window's size.",
      series: [
        { name: "MMD²", color: COLORS[3], points: line(rows, "mmd") },
        { name: "null level", color: COLORS[5], points: line(rows, "mmd_threshold"), dashed: true },
      ], markers, span,
      latest: `latest MMD² ${fmt(last.mmd)} (null level ${fmt(last.mmd_threshold)}), drift: ${last.mmd_drift ?? "–"}`,
    }),
    chart({
      id: "f1", title: "Performance: F1, estimated and from feedback",
      help: "CBPE estimates F1 from calibrated probabilities, with no labels; feedback F1 uses users' scores where they exist; dashed: F1 on held-out data at training.",
      series: [
        { name: "CBPE F1 (no labels)", color: COLORS[2], points: line(rows, "estimated_f1") },
        { name: "feedback F1", color: COLORS[4], points: line(rows, "feedback_f1") },
        { name: "reference F1 (held out)", color: COLORS[5], points: line(rows, "reference_f1"), dashed: true },
      ], markers, span,
      latest: `latest CBPE F1 ${fmt(last.estimated_f1)}, feedback F1 ${fmt(last.feedback_f1)} on ${last.feedback_n ?? 0} inferences, reference F1 ${fmt(last.reference_f1)}`,
    }),
    chart({
      id: "brier", title: "Calibration: Brier score of feedback",
      help: "Mean squared gap between predicted probability and users' feedback (lower is better). Dashed: alert level.",
      series: [{ name: "Brier", color: COLORS[0], points: line(rows, "feedback_brier") }],
      levels: [{ y: levels.brier, label: `alert ${levels.brier}` }], markers, span,
      latest: `latest Brier ${fmt(last.feedback_brier)}`,
    }),
    chart({
      id: "volume", title: "Volume: inferences in the window",
      help: "How many inferences each window holds: the statistics above are over this many.",
      series: [{ name: "inferences", color: COLORS[5], points: line(rows, "n") }], markers, span,
      latest: `latest window: ${last.n} inferences`,
    }),
    chart({
      id: "share", title: "Traffic share, %",
      help: "This version's share of all inferences in the same window: the A/B split as it happened.",
      series: [{ name: "share %", color: COLORS[1], points: line(rows, "share", 100) }], markers, span,
      latest: `latest share ${fmt((last.share ?? 0) * 100, 3)}%`,
    }),
  );
  section.appendChild(grid);
  return section;
}

// log Gamma by Lanczos (g = 7, 9 terms): enough for plotting Beta densities.
const LANCZOS = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
  -176.61503916999185, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
function logGamma(z) {
  if (z < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * z)) - logGamma(1 - z);
  z -= 1;
  let a = LANCZOS[0];
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i] / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

// Density of Beta(a, b) on a grid around its mass, for the bandit posteriors chart.
function betaCurve(a, b) {
  const mean = a / (a + b), sd = Math.sqrt((a * b) / ((a + b) ** 2 * (a + b + 1)));
  const lo = Math.max(0, mean - 5 * sd), hi = Math.min(1, mean + 5 * sd);
  const norm = logGamma(a + b) - logGamma(a) - logGamma(b);
  const points = [];
  for (let i = 0; i <= 120; i++) {
    const x = Math.min(Math.max(lo + ((hi - lo) * i) / 120, 1e-6), 1 - 1e-6);
    points.push([x, Math.exp(norm + (a - 1) * Math.log(x) + (b - 1) * Math.log(1 - x))]);
  }
  return points;
}

function experimentSection(name, rows) {
  const last = rows[rows.length - 1];
  const at = (r) => time(r.emitted_at);
  const namesOf = (list) => [...new Set(rows.flatMap((r) => (r[list] || []).map((a) => a.arm)))];
  const arms = namesOf("arms");
  const shadows = namesOf("shadows");
  const perArm = (field, list = "arms", names = arms) =>
    names.map((arm, i) => ({
      name: arm, color: COLORS[i % COLORS.length],
      points: rows.flatMap((r) => (r[list] || []).filter((a) => a.arm === arm && a[field] !== null && a[field] !== undefined).map((a) => [at(r), a[field]])),
    }));
  const tested = rows.filter((r) => r.test_difference !== null && r.test_difference !== undefined);
  const decisions = rows.filter((r, i) => r.test_decision && r.test_decision !== rows[i - 1]?.test_decision)
    .map((r) => ({ t: at(r), text: `decision: ${r.test_decision}`, kind: "decision-marker" }));
  const section = document.createElement("div");
  section.className = "experiment";
  section.dataset.experiment = name;
  const heading = document.createElement("h3");
  heading.textContent = `experiment ${name}: ${arms.join(" vs ")}`;
  section.appendChild(heading);
  const grid = document.createElement("div");
  grid.className = "grid";
  grid.append(
    chart({
      id: "arm_traffic", title: "Traffic per arm", help: "Inferences routed to each arm so far.",
      series: perArm("traffic"),
      latest: (last.arms || []).map((a) => `${a.arm}: ${a.traffic}`).join(", "),
    }),
    chart({
      id: "arm_reward", title: "Mean reward per arm",
      help: "Reward: how much each feedback score agrees with the arm's predicted label (1 = fully). Higher is better.",
      series: perArm("mean_reward"),
      latest: (last.arms || []).map((a) => `${a.arm}: ${fmt(a.mean_reward)} (${a.feedback_count} scores)`).join(", "),
    }),
    chart({
      id: "posterior", title: "Bandit posteriors: each arm's mean reward",
      help: "Beta posterior of each arm's mean reward (uniform prior), now. In bandit mode, traffic goes to the arm whose draw from it is largest.",
      series: (last.arms || []).filter((a) => a.posterior).map((a, i) => ({
        name: `${a.arm} Beta(${fmt(a.posterior[0])}, ${fmt(a.posterior[1])})`, color: COLORS[i % COLORS.length],
        points: betaCurve(a.posterior[0], a.posterior[1]),
      })),
      xfmt: (v) => fmt(v, 2),
      latest: "x: mean reward; y: probability density",
    }),
    chart({
      id: "sequential", title: "Sequential test: difference in mean reward",
      help: `${last.test_arm_b ?? "B"} minus ${last.test_arm_a ?? "A"}, with its always-valid 95% confidence sequence (grey): it may be read at any time. Blue lines: the decision changed (hover).`,
      series: [{ name: "difference", color: COLORS[0], points: tested.map((r) => [at(r), r.test_difference]) }],
      band: tested.filter((r) => r.test_ci_lower !== null).map((r) => [at(r), r.test_ci_lower, r.test_ci_upper]),
      levels: [{ y: 0, label: "no difference" }], markers: decisions,
      latest: `decision: ${last.test_decision ?? "not enough feedback yet"}, p-value ${fmt(last.test_p_value, 2)}`,
    }),
  );
  if (shadows.length) {
    grid.append(
      chart({
        id: "shadow_agreement", title: "Shadow arms: agreement with the answer",
        help: "Share of the inferences a shadow arm scored (never answered) where its label equals the label the caller got.",
        series: perArm("agreement", "shadows", shadows),
        latest: (last.shadows || []).map((s) => `${s.arm}: ${fmt(s.agreement)} of ${s.paired}`).join(", "),
      }),
      chart({
        id: "shadow_reward", title: "Shadow arms: reward minus the answer's",
        help: "On the same inferences and feedback: the shadow's mean reward minus the answering arm's. Above 0, the shadow would have done better.",
        series: perArm("reward_difference", "shadows", shadows),
        levels: [{ y: 0, label: "as good as the answer" }],
        latest: (last.shadows || []).map((s) => `${s.arm}: ${fmt(s.reward_difference)} (${s.feedback_count} scores)`).join(", "),
      }),
    );
  }
  section.appendChild(grid);
  return section;
}

function sorted(map, by) {
  return [...map.values()].sort((a, b) => time(a[by]) - time(b[by]));
}

function render() {
  pending = false;
  const models = document.getElementById("models");
  models.replaceChildren(models.querySelector("h2"));
  for (const [key, rows] of [...state.drift.entries()].sort()) {
    const alerts = sorted(state.alerts.get(key) || new Map(), "window_end");
    models.appendChild(modelSection(key, sorted(rows, "window_end"), alerts));
  }
  if (state.drift.size === 0) models.insertAdjacentHTML("beforeend", `<p class="empty">No drift reports in this range yet.</p>`);
  const experiments = document.getElementById("experiments");
  experiments.replaceChildren(experiments.querySelector("h2"));
  for (const [name, rows] of [...state.ab.entries()].sort()) experiments.appendChild(experimentSection(name, sorted(rows, "emitted_at")));
  if (state.ab.size === 0) experiments.insertAdjacentHTML("beforeend", `<p class="empty">No A/B reports in this range yet.</p>`);
}

function later() {
  if (!pending) {
    pending = true;
    requestAnimationFrame(render);
  }
}

async function loadHistory() {
  const hours = document.getElementById("range").value;
  const answer = await fetch(`/ui/history?hours=${hours}`);
  const body = await answer.json();
  state.config = body.config;
  document.getElementById("window").textContent = seconds(body.config.window_seconds);
  document.getElementById("slide").textContent = seconds(body.config.slide_seconds);
  for (const kind of ["drift", "alert", "ab"]) for (const row of body[kind]) add(kind, row);
  later();
}

function follow() {
  const badge = document.getElementById("live");
  const source = new EventSource("/ui/events");
  source.onopen = () => { badge.textContent = "live"; badge.className = "live on"; };
  source.onerror = () => { badge.textContent = "reconnecting"; badge.className = "live off"; };
  for (const kind of ["drift", "alert", "ab"]) {
    source.addEventListener(kind, (event) => {
      add(kind, JSON.parse(event.data));
      if (state.config) later();
    });
  }
}

document.getElementById("range").addEventListener("change", () => {
  state.drift.clear(); state.alerts.clear(); state.ab.clear();
  loadHistory();
});
follow();  // first, so nothing published while the history loads is missed
loadHistory();
