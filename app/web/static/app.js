// ModelPress web form: upload a model, start a job, poll it, show the result.
// Everything that shows user or server data goes through textContent, never innerHTML.
"use strict";

(function () {
  const POLL_MS = 1000;
  const MAX_POLL_FAILURES = 5; // tolerate brief API restarts before giving up
  const TERMINAL = new Set(["succeeded", "failed", "canceled"]);

  const $ = (id) => document.getElementById(id);
  const el = {
    form: $("compress-form"),
    file: $("file"),
    name: $("name"),
    preset: $("preset"),
    presetDescription: $("preset-description"),
    submit: $("submit"),
    cancel: $("cancel"),
    error: $("error"),
    job: $("job"),
    jobId: $("job-id"),
    status: $("status"),
    stage: $("stage"),
    progress: $("progress"),
    progressText: $("progress-text"),
    metrics: $("metrics"),
    downloadWrap: $("download-wrap"),
    download: $("download"),
    apiKey: $("api-key"), // present only when the server requires API keys
  };

  // The key lives for this tab only; it is sent as a Bearer token, never put in a URL.
  function authHeaders() {
    const key = el.apiKey ? el.apiKey.value.trim() : "";
    if (el.apiKey) sessionStorage.setItem("modelpress-api-key", key);
    return key ? { Authorization: "Bearer " + key } : {};
  }

  let currentJobId = null;
  let pollTimer = null;

  // An error from the API, carrying the problem+json fields when there were any.
  class ApiError extends Error {
    constructor(status, problem) {
      super(problem.detail || problem.title || "HTTP " + status);
      this.status = status;
      this.code = problem.code || "http_" + status;
      this.title = problem.title || "";
    }
  }

  async function api(method, url, body) {
    const init = { method, headers: Object.assign({ Accept: "application/json" }, authHeaders()) };
    if (body instanceof FormData) {
      init.body = body; // the browser sets the multipart boundary itself
    } else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(url, init);
    const text = await resp.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!resp.ok) {
      const problem = data && typeof data === "object" ? data : { detail: text.slice(0, 300) };
      throw new ApiError(resp.status, problem);
    }
    return data;
  }

  function showError(prefix, err) {
    const parts = [prefix];
    if (err instanceof ApiError) {
      parts.push(err.title ? err.title + " [" + err.code + "]" : "[" + err.code + "]");
      parts.push(err.message);
    } else {
      parts.push(err && err.message ? err.message : String(err));
    }
    el.error.textContent = parts.filter(Boolean).join(": ");
    el.error.hidden = false;
  }

  function clearResult() {
    el.error.hidden = true;
    el.error.textContent = "";
    el.metrics.hidden = true;
    el.metrics.replaceChildren();
    el.downloadWrap.hidden = true;
    el.download.removeAttribute("href");
  }

  function setStatus(status, stage, progress) {
    el.job.hidden = false;
    el.status.textContent = status;
    el.status.dataset.status = status;
    el.stage.textContent = stage ? "(" + stage + ")" : "";
    const p = Math.max(0, Math.min(1, Number(progress) || 0));
    el.progress.value = p;
    el.progressText.textContent = Math.round(p * 100) + "%";
  }

  function setBusy(busy) {
    el.submit.disabled = busy;
    el.file.disabled = busy;
    el.name.disabled = busy;
    el.preset.disabled = busy;
    el.cancel.hidden = !busy || currentJobId === null;
  }

  // ---- formatting -------------------------------------------------------

  function fmtBytes(n) {
    if (typeof n !== "number" || !isFinite(n)) return "–";
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i += 1;
    }
    return (i === 0 ? String(n) : n.toFixed(2)) + " " + units[i];
  }

  function fmtInt(n) {
    return typeof n === "number" && isFinite(n) ? n.toLocaleString("en-US") : "–";
  }

  function fmtNum(n, digits) {
    return typeof n === "number" && isFinite(n) ? n.toFixed(digits) : "–";
  }

  function fmtSci(n) {
    if (typeof n !== "number" || !isFinite(n)) return "–";
    return n !== 0 && Math.abs(n) < 1e-3 ? n.toExponential(2) : n.toFixed(4);
  }

  function latency(side, key) {
    return side && side.latency_ms ? side.latency_ms[key] : undefined;
  }

  // ---- metrics rendering --------------------------------------------------

  function cell(tag, text, cls) {
    const c = document.createElement(tag);
    c.textContent = text;
    if (cls) c.className = cls;
    return c;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    cells.forEach((c) => tr.appendChild(c));
    return tr;
  }

  function renderMetrics(job) {
    const m = job.metrics || {};
    const o = m.original || {};
    const c = m.compressed || {};

    el.metrics.appendChild(cell("h2", "Results"));

    const table = document.createElement("table");
    table.id = "metrics-table";
    const thead = document.createElement("thead");
    thead.appendChild(row([cell("th", ""), cell("th", "Original"), cell("th", "Compressed")]));
    table.appendChild(thead);

    const tbody = document.createElement("tbody");
    const sideRows = [
      ["Size", (s) => fmtBytes(s.size_bytes)],
      ["Parameters", (s) => fmtInt(s.param_count)],
      ["Latency p50 (ms)", (s) => fmtNum(latency(s, "p50"), 3)],
      ["Latency p90 (ms)", (s) => fmtNum(latency(s, "p90"), 3)],
      ["Load (ms)", (s) => fmtNum(s.load_ms, 1)],
    ];
    sideRows.forEach(([label, f]) => {
      tbody.appendChild(row([cell("th", label), cell("td", f(o), "num"), cell("td", f(c), "num")]));
    });
    table.appendChild(tbody);
    el.metrics.appendChild(table);

    const fid = m.fidelity || {};
    const dl = document.createElement("dl");
    dl.id = "metrics-summary";
    const summary = [
      ["Compression ratio", m.compression_ratio, (v) => fmtNum(v, 2) + "×"],
      ["Speedup ratio", m.speedup_ratio, (v) => fmtNum(v, 2) + "×"],
      ["Cosine similarity", fid.cosine_similarity, (v) => fmtNum(v, 6)],
      ["Max abs error", fid.max_abs_error, fmtSci],
    ];
    summary.forEach(([label, value, f]) => {
      dl.appendChild(cell("dt", label));
      dl.appendChild(cell("dd", typeof value === "number" ? f(value) : "–"));
    });
    el.metrics.appendChild(dl);

    // job.warnings already holds the metrics' warnings and the passes' ones; keep each once.
    const texts = [].concat(job.warnings || [], m.warnings || []).map((w) =>
      typeof w === "string" ? w : (w && w.message) || ""
    );
    const warnings = Array.from(new Set(texts.filter(Boolean)));
    if (warnings.length) {
      el.metrics.appendChild(cell("h3", "Warnings"));
      const ul = document.createElement("ul");
      ul.id = "warnings";
      warnings.forEach((text) => ul.appendChild(cell("li", text)));
      el.metrics.appendChild(ul);
    }

    if (m.host && typeof m.host === "object") {
      const h = m.host;
      const bits = [h.cpu, h.cores ? h.cores + " cores" : "", h.onnxruntime ? "onnxruntime " + h.onnxruntime : "", h.provider];
      el.metrics.appendChild(cell("p", "Measured on: " + bits.filter(Boolean).join(", "), "hint"));
    }
    el.metrics.hidden = false;
  }

  // ---- job lifecycle ------------------------------------------------------

  function finish(job) {
    currentJobId = null;
    setBusy(false);
    if (job.status === "succeeded") {
      renderMetrics(job);
      if (job.output_model_id) {
        el.download.href = "/v1/models/" + encodeURIComponent(job.output_model_id) + "/download";
        el.downloadWrap.hidden = false;
      }
    } else if (job.status === "failed") {
      const e = job.error || {};
      el.error.textContent = "Job failed [" + (e.code || "unknown") + "]: " + (e.message || "no message");
      el.error.hidden = false;
    }
  }

  function poll(jobId, failures) {
    pollTimer = setTimeout(async () => {
      if (jobId !== currentJobId) return; // a newer submission took over
      let job;
      try {
        job = await api("GET", "/v1/jobs/" + encodeURIComponent(jobId));
      } catch (err) {
        if (failures + 1 >= MAX_POLL_FAILURES || (err instanceof ApiError && err.status === 404)) {
          currentJobId = null;
          setBusy(false);
          showError("Could not read the job", err);
          return;
        }
        poll(jobId, failures + 1);
        return;
      }
      setStatus(job.status, job.stage, job.progress);
      if (TERMINAL.has(job.status)) {
        finish(job);
      } else {
        poll(jobId, 0);
      }
    }, POLL_MS);
  }

  async function onSubmit(event) {
    event.preventDefault();
    clearResult();
    const file = el.file.files && el.file.files[0];
    if (!file) {
      el.error.textContent = "Choose a model file (.onnx or .zip) first.";
      el.error.hidden = false;
      return;
    }
    if (pollTimer) clearTimeout(pollTimer);
    currentJobId = null;
    setBusy(true);
    el.jobId.textContent = "";
    setStatus("uploading", "", 0);

    let model;
    try {
      const form = new FormData();
      form.append("file", file, file.name);
      const name = el.name.value.trim();
      if (name) form.append("name", name);
      model = await api("POST", "/v1/models", form);
    } catch (err) {
      setBusy(false);
      setStatus("upload failed", "", 0);
      showError("Upload failed", err);
      return;
    }

    let job;
    try {
      setStatus("creating job", "", 0);
      job = await api("POST", "/v1/jobs", { model_id: model.id, preset: el.preset.value });
    } catch (err) {
      setBusy(false);
      setStatus("job not created", "", 0);
      showError("Could not create the job", err);
      return;
    }

    currentJobId = job.id;
    el.jobId.textContent = job.id;
    setBusy(true);
    setStatus(job.status, job.stage, job.progress);
    if (TERMINAL.has(job.status)) {
      finish(job);
    } else {
      poll(job.id, 0);
    }
  }

  // With API keys a plain link cannot authenticate: fetch the file, then save the blob.
  async function onDownload(event) {
    if (!el.apiKey) return; // no auth: the link downloads by itself
    event.preventDefault();
    try {
      const resp = await fetch(el.download.href, { headers: authHeaders() });
      if (!resp.ok) throw new ApiError(resp.status, await resp.json().catch(() => ({})));
      const url = URL.createObjectURL(await resp.blob());
      const link = document.createElement("a");
      link.href = url;
      link.download = el.download.getAttribute("download") || "model.onnx";
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      showError("Download failed", err);
    }
  }

  async function onCancel() {
    if (!currentJobId) return;
    el.cancel.disabled = true;
    try {
      await api("POST", "/v1/jobs/" + encodeURIComponent(currentJobId) + "/cancel");
    } catch (err) {
      showError("Cancel failed", err);
    } finally {
      el.cancel.disabled = false;
    }
  }

  function onPresetChange() {
    const opt = el.preset.selectedOptions[0];
    el.presetDescription.textContent = opt ? opt.dataset.description || "" : "";
  }

  if (el.apiKey) el.apiKey.value = sessionStorage.getItem("modelpress-api-key") || "";
  el.form.addEventListener("submit", onSubmit);
  el.download.addEventListener("click", onDownload);
  el.cancel.addEventListener("click", onCancel);
  el.preset.addEventListener("change", onPresetChange);
})();
