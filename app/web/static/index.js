// The upload page: the form (see form.js), then recent jobs and models, newest first, by page.
import { api, describe, setupKey, showError } from "./api.js";
import { $, fmtBytes, fmtDate, fmtRatio, h, jobLabel, link, shortId } from "./dom.js";
import {
  checkDataset, checkRuns, collectShapes, fieldError, loadLimits, serverFieldError, state,
  uploadDataset, uploadModel, useModel,
} from "./form.js";

// Rows per page: 10, or ?limit= (1 to 50) for a longer or shorter list.
const asked = Number(new URLSearchParams(location.search).get("limit"));
const PAGE = Number.isInteger(asked) && asked >= 1 && asked <= 50 ? asked : 10;

function jobRow(job, names) {
  const what = jobLabel(job) + (job.kind === "candidate" ? " (candidate)" : "");
  const model = names[job.model_id] || shortId(job.model_id);
  const ratio = job.metrics && job.metrics.compression_ratio;
  return h("li", { class: "row" }, [
    link("/jobs/" + encodeURIComponent(job.id), `${what} on ${model}`),
    h("span", { class: "badge status-" + job.status, text: job.status }),
    h("span", { class: "hint", text: [fmtDate(job.created_at), ratio ? fmtRatio(ratio) + " smaller" : ""].filter(Boolean).join(" · ") }),
  ]);
}

function modelRow(model) {
  const origin = model.job_id ? "output of job " + shortId(model.job_id) : "uploaded";
  return h("li", { class: "row" }, [
    link("/models/" + encodeURIComponent(model.id), model.name),
    h("span", { class: "hint", text: `${fmtBytes(model.size_bytes)} · ${origin} · ${fmtDate(model.created_at)}` }),
  ]);
}

// A list with Newer/Older buttons over the API's cursors.
function pager(kind, url, render) {
  const cursors = [null];
  const list = $(kind + "-list");
  const older = $(kind + "s-older");
  const newer = $(kind + "s-newer");
  async function show() {
    const cursor = cursors[cursors.length - 1];
    const sep = url.includes("?") ? "&" : "?";
    const page = await api("GET", url + sep + "limit=" + PAGE + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    const rows = await render(page.items);
    list.replaceChildren(...(rows.length ? rows : [h("li", { class: "hint", text: "None yet." })]));
    older.hidden = !page.next_cursor;
    older.dataset.cursor = page.next_cursor || "";
    newer.hidden = cursors.length === 1;
  }
  older.addEventListener("click", () => { cursors.push(older.dataset.cursor); show(); });
  newer.addEventListener("click", () => { cursors.pop(); show(); });
  return show;
}

const names = {};
const showModels = pager("model", "/v1/models", async (items) => {
  items.forEach((m) => { names[m.id] = m.name; });
  return items.map(modelRow);
});
// An auto search's candidates are listed on its own page, not in the history.
const HISTORY_KINDS = "?kind=compress&kind=benchmark&kind=auto";
const showJobs = pager("job", "/v1/jobs" + HISTORY_KINDS, async (items) => items.map((j) => jobRow(j, names)));

async function onSubmit(event) {
  event.preventDefault();
  $("error").hidden = true;
  const status = (text) => { $("submit-text").textContent = text; };
  if (state.uploading) {
    status("waiting for the model upload to finish…");
    await state.uploading.catch(() => null);
  }
  if (!state.model) {
    fieldError("file", $("file").files[0] ? "The model did not upload; choose the file again." : "Choose a model file (.onnx or .zip) first.");
    $("file").focus();
    return;
  }
  const shapes = collectShapes();
  const runs = checkRuns();
  const calibration = checkDataset("calibration", "calibration_dataset_id");
  const evaluation = checkDataset("evaluation", "eval_dataset_id");
  if (!shapes.ok || runs === null || calibration === null || evaluation === null) {
    status("Fix the fields marked above.");
    const bad = document.querySelector(".field-error:not([hidden])");
    if (bad) bad.scrollIntoView({ block: "center" });
    return;
  }
  $("submit").disabled = true;
  try {
    const body = { model_id: state.model.id, preset: $("preset").value };
    if (shapes.shapes) body.input_shapes = shapes.shapes;
    if (runs !== undefined) body.benchmark = { runs };
    if (calibration) body.calibration_dataset_id = await uploadDataset(calibration, "calibration_dataset_id", "calibration data", status);
    if (evaluation) body.eval_dataset_id = await uploadDataset(evaluation, "eval_dataset_id", "evaluation data", status);
    status("creating the job…");
    const job = await api("POST", "/v1/jobs", body);
    status("job created: opening its page…");
    location.assign("/jobs/" + encodeURIComponent(job.id));
  } catch (err) {
    if (!serverFieldError(err)) showError("Could not create the job", err);
    status(describe(err).text);
    $("submit").disabled = false;
  }
}

async function load() {
  await loadLimits();
  const wanted = new URLSearchParams(location.search).get("model");
  try {
    if (wanted) useModel(await api("GET", "/v1/models/" + encodeURIComponent(wanted)));
    await showModels();
    await showJobs();
  } catch (err) {
    showError("Could not load", err);
  }
}

$("compress-form").addEventListener("submit", onSubmit);
$("file").addEventListener("change", () => { if ($("file").files[0]) uploadModel($("file").files[0]); });
$("runs").addEventListener("input", checkRuns);
$("calibration").addEventListener("change", () => checkDataset("calibration", "calibration_dataset_id"));
$("evaluation").addEventListener("change", () => checkDataset("evaluation", "eval_dataset_id"));
$("preset").addEventListener("change", () => {
  const opt = $("preset").selectedOptions[0];
  $("preset-description").textContent = opt ? opt.dataset.description || "" : "";
});
if (setupKey(load)) load();
