// The upload form's fields: the model uploaded as soon as it is chosen, its input shapes, the
// datasets and the runs, each checked where it stands before anything is submitted.
import { api, ApiError, describe, upload } from "./api.js";
import { $, fmtBytes, h } from "./dom.js";

export const state = { model: null, uploading: null, limits: {} };

export function fieldError(field, message) {
  const box = $(field + "-error");
  if (!box) return false;
  box.textContent = message || "";
  box.hidden = !message;
  const input = box.closest("fieldset") ? null : box.previousElementSibling;
  if (input && input.matches && input.matches("input,select")) input.setAttribute("aria-invalid", message ? "true" : "false");
  return true;
}

// A server error on a field (input_shapes.input.1, benchmark.runs...) lands next to that field.
export function serverFieldError(err) {
  if (!(err instanceof ApiError) || !err.field) return false;
  const parts = err.field.split(".");
  for (let n = parts.length; n > 0; n -= 1) {
    const { text, remedy } = describe(err);
    if (fieldError(parts.slice(0, n).join("."), text + (remedy ? " " + remedy : ""))) return true;
  }
  return false;
}

function showUpload(fraction, text) {
  $("upload").hidden = false;
  $("upload-progress").value = fraction;
  $("upload-text").textContent = text;
}

export async function uploadModel(file) {
  fieldError("file", "");
  state.model = null;
  renderShapes(null);
  if (!/\.(onnx|zip)$/i.test(file.name)) return fieldError("file", "Choose an .onnx file, or a .zip with the model and its external data.");
  if (state.limits.max_upload_bytes && file.size > state.limits.max_upload_bytes) {
    return fieldError("file", `This file is ${fmtBytes(file.size)}; this server takes at most ${fmtBytes(state.limits.max_upload_bytes)}.`);
  }
  const form = new FormData();
  form.append("file", file, file.name);
  const name = $("name").value.trim();
  if (name) form.append("name", name);
  showUpload(0, "uploading 0%");
  state.uploading = upload("/v1/models", form, (f) => showUpload(f, `uploading ${Math.round(f * 100)}% of ${fmtBytes(file.size)}`));
  try {
    useModel(await state.uploading);
  } catch (err) {
    $("upload").hidden = true;
    const { text, remedy } = describe(err);
    fieldError("file", "Upload failed: " + text + (remedy ? " What to do: " + remedy : ""));
  } finally {
    state.uploading = null;
  }
}

export function useModel(model) {
  state.model = model;
  showUpload(1, `uploaded: ${model.name} (${fmtBytes(model.size_bytes)}), model ${model.id}`);
  renderShapes(model);
}

const symbolic = (dims) => dims.some((d) => typeof d === "string");

function renderShapes(model) {
  const box = $("shape-fields");
  box.replaceChildren();
  $("shapes").hidden = !model;
  if (!model) return;
  model.inputs.forEach((input, i) => {
    const id = "shape-" + i;
    const shown = "[" + input.shape.join(", ") + "]";
    const value = input.shape.map((d) => (typeof d === "string" ? "1" : String(d))).join(", ");
    const hint = symbolic(input.shape) ? "symbolic dims: " + input.shape.filter((d) => typeof d === "string").join(", ") : "all dims fixed";
    const field = h("input", { id, type: "text", value, inputmode: "numeric", autocomplete: "off", "data-input": input.name, "aria-describedby": id + "-error" });
    field.readOnly = !symbolic(input.shape);
    field.addEventListener("input", () => checkShape(field, input));
    box.append(
      h("label", { for: id }, [input.name + " ", h("span", { class: "hint", text: `${input.dtype} ${shown}, ${hint}` })]),
      field,
      h("p", { id: id + "-error", class: "field-error", hidden: true })
    );
  });
}

// The shape in a field, or null after showing what is wrong with it next to the field.
function checkShape(field, input) {
  const parts = field.value.split(/[\s,x×]+/).filter(Boolean);
  const dims = parts.map(Number);
  const maxDim = state.limits.max_input_dim || 1048576;
  const maxElements = state.limits.max_input_elements || 2 ** 30;
  let message = "";
  if (dims.some((d) => !Number.isInteger(d) || d < 1)) message = "Give whole numbers of 1 or more, separated by commas.";
  else if (dims.length !== input.shape.length) message = `${input.name} has ${input.shape.length} dims; this gives ${dims.length}.`;
  else if (dims.some((d, i) => typeof input.shape[i] === "number" && d !== input.shape[i])) message = `Fixed dims must stay as the model has them: [${input.shape.join(", ")}].`;
  else if (dims.some((d) => d > maxDim)) message = `Each dim at most ${maxDim}.`;
  else if (dims.reduce((a, b) => a * b, 1) > maxElements) message = `At most ${maxElements} elements per input.`;
  fieldError(field.id, message);
  return message ? null : dims;
}

export function collectShapes() {
  if (!state.model) return { ok: true, shapes: undefined };
  const shapes = {};
  let ok = true;
  state.model.inputs.forEach((input, i) => {
    const dims = checkShape($("shape-" + i), input);
    if (dims === null) ok = false;
    else if (symbolic(input.shape)) shapes[input.name] = dims;
  });
  return { ok, shapes: Object.keys(shapes).length ? shapes : undefined };
}

export function checkRuns() {
  const raw = $("runs").value.trim();
  const max = state.limits.max_benchmark_runs || 10000;
  const runs = Number(raw);
  if (raw === "") {
    fieldError("benchmark.runs", "");
    return undefined;
  }
  const bad = !Number.isInteger(runs) || runs < 1 || runs > max;
  fieldError("benchmark.runs", bad ? `Give a whole number from 1 to ${max}.` : "");
  return bad ? null : runs;
}

export function checkDataset(inputId, field) {
  const file = $(inputId).files[0];
  let message = "";
  if (file && !/\.npz$/i.test(file.name)) message = "Choose an .npz file (numpy.savez).";
  else if (file && state.limits.max_upload_bytes && file.size > state.limits.max_upload_bytes) message = `At most ${fmtBytes(state.limits.max_upload_bytes)}.`;
  fieldError(field, message);
  return message ? null : file || undefined;
}

export async function uploadDataset(file, field, label, onText) {
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const dataset = await upload("/v1/datasets", form, (f) => onText(`uploading ${label} ${Math.round(f * 100)}%`));
    return dataset.id;
  } catch (err) {
    if (!serverFieldError(err)) {
      const { text, remedy } = describe(err);
      fieldError(field, text + (remedy ? " What to do: " + remedy : ""));
    }
    throw err;
  }
}

export async function loadLimits() {
  try {
    state.limits = await api("GET", "/v1/limits");
    $("runs").max = String(state.limits.max_benchmark_runs || 10000);
  } catch (_) {
    state.limits = {};
  }
}
