// What a person can do about an error code or a warning, in one sentence each.

const CODES = {
  unauthorized: "enter a valid API key (the key form at the top of the page).",
  not_found: "check the link: it may belong to another account, or the item was deleted.",
  invalid_model: "upload an ONNX file that onnx.checker accepts, or a .zip with the model and its external-data files.",
  unsafe_archive: "rebuild the .zip with plain relative paths and no links.",
  model_too_large: "the upload is over this deployment's limit (GET /v1/limits); shrink the model or ask for a higher limit.",
  dataset_too_large: "keep fewer samples in the .npz; a few hundred are enough to calibrate and evaluate.",
  invalid_dataset: "save the .npz with numpy.savez: numeric arrays named after the model's inputs, axis 0 = samples, optional labels.",
  dataset_mismatch: "name each array after a model input and give each sample the input's shape (axis 0 = samples).",
  invalid_recipe: "pick a preset from the list, or fix the pass named in the message.",
  invalid_request: "fix the field named in the message.",
  quota_exceeded: "delete models you no longer need, then upload again.",
  too_many_active_jobs: "wait for a running job to finish, or cancel one.",
  rate_limited: "wait a minute before submitting again.",
  broker_unavailable: "the job queue is down; try again in a minute.",
  service_unavailable: "the service is restarting or overloaded; try again in a minute.",
  service_busy: "the service is busy; try again in a minute.",
  storage_full: "the server's storage is full; delete old models or ask the administrator.",
  model_in_use: "wait for the jobs that use this model to finish.",
  timeout: "the job ran past its time limit: fewer benchmark runs, smaller input shapes, or a lighter preset.",
  out_of_memory: "the job ran out of memory: smaller input shapes, or a lighter preset.",
  worker_crashed: "the worker crashed on this model: try another preset; the job log has the details.",
  worker_lost: "the worker stopped while running the job: submit it again.",
  invalid_output: "this preset broke the model: try another preset.",
  internal_error: "an unexpected error: try another preset, and report the job id.",
  storage_unavailable: "the model storage did not answer: submit the job again later.",
  calibration_required: "upload calibration data (.npz) with the job, or pick a dynamic preset.",
};

export function remedyFor(code, message) {
  if (CODES[code]) return CODES[code];
  if (/calibration/i.test(message || "")) return CODES.calibration_required;
  if (/shape/i.test(message || "")) return "give the input shapes explicitly in the form.";
  return "";
}

// Warnings are free text: advice goes by what they speak of.
const WARNINGS = [
  [/accuracy fell|over the accuracy budget|over the budget|rejected/i, "compare the presets on the model's page: fp16 or int8-dynamic keep more accuracy; for int8-static, calibrate on more representative data."],
  [/noisy|\bcv\b|spread|variation/i, "timings vary: raise the benchmark runs or measure on a quieter machine."],
  [/synthetic|no evaluation|without labels|no labels/i, "upload an evaluation .npz (with labels) so fidelity and accuracy use real inputs."],
  [/calibrat/i, "upload a calibration .npz of real inputs (a few hundred samples)."],
  [/flops left out|shapes unknown|symbolic/i, "give the input shapes in the form so every dim is known."],
  [/threads capped/i, "the worker has fewer CPUs than asked: ask for fewer threads, or run on a larger worker."],
  [/batch_sizes ignored/i, "leave batch sizes out for models without a batch axis."],
  [/memory not measured/i, "give the job more time (fewer runs) so the memory probe fits its budget."],
  [/time budget|ran out/i, "fewer runs or smaller inputs so every measurement fits the time budget."],
  [/inf\/nan|nonfinite/i, "the model gives inf/nan: check its inputs' value range (input values or the eval data)."],
  [/slower|speedup/i, "this CPU may lack the instructions this format needs (see the host's features): try another preset."],
];

export function adviceFor(warning) {
  const hit = WARNINGS.find(([pattern]) => pattern.test(warning));
  return hit ? hit[1] : "";
}
