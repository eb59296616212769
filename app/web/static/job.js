// One job's page: polled until it ends, then its recipe, shapes, warnings, charts, metrics,
// report and downloads. Everything comes from the API, so a reload or a link shows it again.
import { api, ApiError, download, setupKey, showError } from "./api.js";
import { $, facts, fmtBytes, fmtDate, fmtNum, fmtRatio, h, link, shortId, table } from "./dom.js";
import { adviceFor } from "./remedies.js";
import { charts, metricsTables, reportParts, sides } from "./results.js";

const POLL_MS = 1000;
const ACTIVE = new Set(["queued", "running"]);
const jobId = $("job").dataset.jobId;
let cancelling = false;

function renderStatus(job) {
  $("status").textContent = job.status;
  $("status").className = "status badge status-" + job.status;
  $("stage").textContent = job.stage && ACTIVE.has(job.status) ? "(" + job.stage + ")" : "";
  const active = ACTIVE.has(job.status);
  $("progress-wrap").hidden = !active;
  const p = Math.max(0, Math.min(1, Number(job.progress) || 0));
  $("progress").value = p;
  $("progress-text").textContent = Math.round(p * 100) + "%" + (job.attempts > 1 ? ` (attempt ${job.attempts})` : "");
  $("cancel").hidden = !active;
  const failure = $("failure");
  if (job.status === "failed" && job.error) {
    showError("The job failed", new ApiError(0, { code: job.error.code, title: "", detail: job.error.message }), failure);
  } else if (job.status === "canceled") {
    failure.textContent = "The job was canceled.";
    failure.hidden = false;
  } else {
    failure.hidden = true;
  }
}

function renderFacts(job) {
  const model = job.model_id ? link("/models/" + encodeURIComponent(job.model_id), "model " + shortId(job.model_id)) : null;
  const parent = job.parent_job_id ? link("/jobs/" + encodeURIComponent(job.parent_job_id), "auto job " + shortId(job.parent_job_id)) : null;
  const v = job.verdict_detail;
  const verdict = job.verdict ? job.verdict + (v && v.metric ? ` (${v.metric}, ${v.basis}${v.delta !== null && v.delta !== undefined ? ", Δ " + fmtNum(v.delta, 4) : ""})` : "") : null;
  facts($("job-facts"), [
    ["Kind", job.kind], ["Preset", job.preset || "custom recipe"], ["Model", model], ["Part of", parent],
    ["Calibration data", job.calibration_dataset_id ? shortId(job.calibration_dataset_id) : "none (synthetic inputs)"],
    ["Evaluation data", job.eval_dataset_id ? shortId(job.eval_dataset_id) : "none (synthetic inputs)"],
    // The runs actually timed: a job that left runs out got the deployment's default.
    ["Timed runs", sides(job.metrics).map(([name, b]) => `${b.runs} (${name})`).join(", ")], ["Verdict", verdict],
    ["Created", fmtDate(job.created_at)], ["Finished", job.finished_at ? fmtDate(job.finished_at) : null],
  ]);
}

function renderRecipe(job) {
  const passes = (job.recipe && job.recipe.passes) || [];
  const items = passes.map((p) => {
    const params = Object.entries(p).filter(([k]) => k !== "type").map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`);
    return h("li", {}, [h("code", { text: p.type }), params.length ? " " + params.join(", ") : ""]);
  });
  $("recipe").replaceChildren(h("h2", { text: "Recipe" }), h("p", { text: job.kind === "auto" ? "Auto: a search over candidate recipes; each candidate's recipe is on its own page (see Candidates)." : job.preset ? `Preset ${job.preset}: ${passes.length} pass(es).` : `${passes.length} pass(es).` }), h("ol", { id: "recipe-passes" }, items));
  $("recipe").hidden = false;
}

function renderShapes(job) {
  const measured = sides(job.metrics).map(([, block]) => block.input_shapes).find(Boolean);
  const shapes = measured || job.input_shapes;
  if (!shapes) return;
  const note = job.input_shapes ? "As given with the job." : "None given with the job: symbolic dims were set to the default size. Give input shapes in the form to time the model at a real size.";
  $("shapes").replaceChildren(h("h2", { text: "Input shapes used" }),
    table(["Input", "Shape"], Object.entries(shapes).map(([name, dims]) => [name, "[" + dims.join(", ") + "]"]), { id: "shapes-table", class: "compact" }),
    h("p", { class: "hint", text: (measured ? "The shapes of the timed runs. " : "") + note }));
  $("shapes").hidden = false;
}

function renderWarnings(texts) {
  const unique = Array.from(new Set(texts.filter(Boolean)));
  $("warnings").replaceChildren(...unique.map((text) => {
    const advice = adviceFor(text);
    return h("li", {}, [h("span", { text }), advice ? h("span", { class: "remedy", text: "What to do: " + advice }) : null]);
  }));
  $("warnings-card").hidden = unique.length === 0;
}

async function renderDownloads(job) {
  if (!job.output_model_id) return;
  const model = await api("GET", "/v1/models/" + encodeURIComponent(job.output_model_id));
  const base = "/v1/models/" + encodeURIComponent(model.id) + "/download";
  const ext = model.packaging === "zip" ? ".zip" : ".onnx";
  const button = (id, href, file, text) => {
    const a = h("a", { id, class: "button", href, download: file, text });
    a.addEventListener("click", (e) => { e.preventDefault(); download(href, file).catch((err) => showError("Download failed", err)); });
    return a;
  };
  const items = [h("li", {}, [button("download", base, model.name + ext, `Download ${ext} (${fmtBytes(model.size_bytes)})`)])];
  if (model.transport_size_bytes) {
    items.push(h("li", {}, [button("download-zstd", base + "?encoding=zstd", model.name + ext + ".zst", `Download ${ext}.zst (${fmtBytes(model.transport_size_bytes)})`),
      h("span", { class: "hint", text: " zstd for transport: decompress with zstd -d" })]));
  }
  $("download-list").replaceChildren(...items);
  $("downloads").hidden = false;
}

function renderCandidates(job) {
  if (!job.candidates || !job.candidates.length) return;
  const rows = job.candidates.map((c) => [link("/jobs/" + encodeURIComponent(c.job_id), c.label), c.status,
    fmtRatio(c.compression_ratio), fmtRatio(c.speedup_ratio), c.metric ? `${c.metric} Δ ${fmtNum(c.delta, 4)}` : "–",
    c.verdict || "–", (c.recommended ? "recommended " : "") + (c.pareto ? "Pareto" : "")]);
  $("candidates").replaceChildren(h("h2", { text: "Candidates" }), h("p", { text: job.explanation || "" }),
    table(["Candidate", "Status", "Smaller", "Faster", "Accuracy", "Verdict", "Notes"], rows, { id: "candidate-table" }),
    job.model_id ? h("p", {}, [link("/models/" + encodeURIComponent(job.model_id), "Compare them in a chart on the model's page")]) : null);
  $("candidates").hidden = false;
}

async function renderDone(job) {
  renderShapes(job);
  renderCandidates(job);
  let report = null;
  try {
    report = await api("GET", "/v1/jobs/" + encodeURIComponent(jobId) + "/report");
  } catch (err) {
    report = null;
  }
  const m = job.metrics;
  renderWarnings([].concat(job.warnings || [], (m && m.warnings) || [], (report && report.warnings) || []));
  if (m) {
    const figures = charts(m);
    $("chart-grid").replaceChildren(...figures);
    $("charts").hidden = figures.length === 0;
    $("metrics").replaceChildren(h("h2", { text: "Metrics" }), ...metricsTables(m));
    $("metrics").hidden = false;
  }
  if (report) {
    const parts = reportParts(report);
    $("report").replaceChildren(h("h2", { text: "Report" }), ...parts);
    $("report").hidden = parts.length === 0;
  }
  await renderDownloads(job);
}

async function poll(failures) {
  let job;
  try {
    job = await api("GET", "/v1/jobs/" + encodeURIComponent(jobId));
  } catch (err) {
    const gone = err instanceof ApiError && [401, 404].includes(err.status);
    if (gone || failures >= 5) {
      $("status").textContent = gone && err.status === 404 ? "not found" : "unavailable";
      $("progress-wrap").hidden = true;
      showError("Could not read the job", err);
      return;
    }
    setTimeout(() => poll(failures + 1), POLL_MS);
    return;
  }
  document.title = `Job ${shortId(job.id)}: ${job.status} · ModelPress`;
  renderStatus(job);
  renderFacts(job);
  renderRecipe(job);
  if (ACTIVE.has(job.status)) {
    setTimeout(() => poll(0), POLL_MS);
  } else {
    renderWarnings(job.warnings || []);
    try {
      await renderDone(job);
    } catch (err) {
      showError("Could not show every result", err);
    }
    $("job").dataset.loaded = job.status;
  }
}

$("cancel").addEventListener("click", async () => {
  if (cancelling) return;
  cancelling = true;
  try {
    await api("POST", "/v1/jobs/" + encodeURIComponent(jobId) + "/cancel");
  } catch (err) {
    showError("Cancel failed", err);
  } finally {
    cancelling = false;
  }
});

if (setupKey(() => poll(0))) poll(0);
