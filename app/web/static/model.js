// A model's page: its facts, and every variant made from it (each preset's job and every auto
// candidate) side by side in a table and in a size-against-latency chart.
import { api, listAll, setupKey, showError } from "./api.js";
import { scatterChart } from "./charts.js";
import { $, facts, fmtBytes, fmtDate, fmtInt, fmtMs, fmtNum, fmtPct, fmtRatio, h, jobLabel, link, shortId, table } from "./dom.js";

const modelId = $("model").dataset.modelId;
const MAX_JOBS = 400;

// An auto search's candidates are named as its table names them ("int8 dynamic, per-channel").
const candidateLabels = new Map();
const labelOf = (job) => candidateLabels.get(job.id) || jobLabel(job);

function quality(m) {
  if (m.accuracy) return { text: `${m.accuracy.metric} ${m.accuracy.metric === "mse" ? fmtNum(m.accuracy.compressed, 4) : fmtPct(m.accuracy.compressed)}`, score: m.accuracy.metric === "mse" ? null : m.accuracy.delta };
  if (m.fidelity) return { text: `cos ${fmtNum(m.fidelity.cosine_similarity, 4)}`, score: m.fidelity.cosine_similarity - 1 };
  return { text: "", score: null };
}

// Colour by how close the outputs stay: within 0.1%, within 1%, or further.
const tone = (score) => (score === null ? "tone-unknown" : score >= -0.001 ? "tone-good" : score >= -0.01 ? "tone-fair" : "tone-poor");

async function variants() {
  const jobs = await listAll("/v1/jobs?model_id=" + encodeURIComponent(modelId), MAX_JOBS);
  const byId = new Map(jobs.map((j) => [j.id, j]));
  for (const auto of jobs.filter((j) => j.kind === "auto")) {
    (auto.candidates || []).forEach((c) => candidateLabels.set(c.job_id, c.label));
    const children = await listAll("/v1/jobs?parent_job_id=" + encodeURIComponent(auto.id), MAX_JOBS);
    children.forEach((c) => byId.set(c.id, c));
  }
  return Array.from(byId.values()).sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
}

function render(jobs) {
  // An auto job's output is its recommended candidate's: the candidate's point stands for it.
  const done = jobs.filter((j) => j.status === "succeeded" && j.kind !== "auto" && j.metrics && j.metrics.compressed);
  $("variants-empty").hidden = jobs.length > 0;
  const rows = jobs.map((j) => {
    const m = j.metrics && j.metrics.compressed ? j.metrics : null;
    const c = m ? m.compressed : {};
    return [
      link("/jobs/" + encodeURIComponent(j.id), labelOf(j) + (j.kind === "candidate" ? " (candidate)" : j.kind === "auto" ? " (auto)" : "")),
      j.status, m ? fmtBytes(c.size_bytes) : "–", m ? fmtRatio(m.compression_ratio) : "–",
      m ? fmtMs(c.latency_ms.p50) : "–", m ? fmtRatio(m.speedup_ratio) : "–",
      m && m.fidelity ? fmtNum(m.fidelity.cosine_similarity, 5) : "–",
      m && m.accuracy ? `${fmtNum(m.accuracy.compressed, 4)} (Δ ${fmtNum(m.accuracy.delta, 3)})` : "–",
      j.verdict || "–",
    ];
  });
  $("variants-table").replaceChildren(rows.length ? table(
    ["Variant", "Status", "Size", "Smaller", "p50", "Faster", "Cosine", "Accuracy", "Verdict"], rows, { id: "variants-grid" }) : "");
  if (!done.length) {
    $("variants-chart").replaceChildren();
    return;
  }
  const o = done[0].metrics.original;
  const points = [{ x: o.size_bytes, y: o.latency_ms.p50, label: "original", tone: "tone-original" }].concat(done.map((j) => {
    const q = quality(j.metrics);
    return { x: j.metrics.compressed.size_bytes, y: j.metrics.compressed.latency_ms.p50, label: labelOf(j) + (q.text ? " · " + q.text : ""), tone: tone(q.score) };
  }));
  const legend = h("p", { class: "legend" }, [
    ["tone-good", "accuracy (or cosine) within 0.1% of the original"], ["tone-fair", "within 1%"], ["tone-poor", "lost more"], ["tone-original", "original"],
  ].map(([cls, text]) => h("span", { class: "key " + cls }, [h("span", { class: "swatch", "aria-hidden": "true" }), text])));
  const figure = scatterChart("chart-variants", "Size against latency (p50), one point per variant", points,
    { x: "size", y: "p50 latency", xFmt: fmtBytes, yFmt: (v) => fmtNum(v, v < 1 ? 3 : 2) + " ms" },
    $("variants-chart").clientWidth);
  figure.append(legend);
  $("variants-chart").replaceChildren(figure);
}

async function load() {
  try {
    const model = await api("GET", "/v1/models/" + encodeURIComponent(modelId));
    document.title = `${model.name} · ModelPress`;
    $("model-name").textContent = model.name;
    facts($("model-facts"), [
      ["Size", fmtBytes(model.size_bytes) + (model.transport_size_bytes ? ` (${fmtBytes(model.transport_size_bytes)} as zstd)` : "")],
      ["Parameters", fmtInt(model.param_count)], ["Opset", String(model.opset)], ["Producer", model.producer || "–"],
      ["Inputs", model.inputs.map((i) => `${i.name} ${i.dtype} [${i.shape.join(", ")}]`).join("; ")],
      ["Made by", model.job_id ? link("/jobs/" + encodeURIComponent(model.job_id), "job " + shortId(model.job_id)) : "upload"],
      ["Uploaded", fmtDate(model.created_at)],
    ]);
    render(await variants());
    $("variants").dataset.loaded = "true";
  } catch (err) {
    $("model-name").textContent = "not available";
    showError("Could not load the model", err);
  }
}

if (setupKey(load)) load();
