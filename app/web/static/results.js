// A finished job's numbers: the charts, the full metrics table and the report's worst rows.
import { barChart, pairChart } from "./charts.js";
import { fmtBytes, fmtInt, fmtMs, fmtNum, fmtPct, fmtRatio, fmtSci, h, isNum, table } from "./dom.js";

const lat = (side, key) => (side && side.latency_ms ? side.latency_ms[key] : undefined);
const perS = (n) => (isNum(n) ? fmtNum(n, n < 100 ? 1 : 0) + "/s" : "–");
const mib = (n) => (isNum(n) ? fmtNum(n, 1) + " MiB" : "–");

// Both sides of a compress job, or the one block of a single-model benchmark as "model".
export function sides(metrics) {
  if (!metrics) return [];
  if (metrics.original) return [["original", metrics.original], ["compressed", metrics.compressed]];
  return [["model", metrics]];
}

export function charts(metrics) {
  const [o, c] = [metrics.original, metrics.compressed];
  if (!o || !c) return [];
  const figures = [
    pairChart("chart-size", "Size", o.size_bytes, c.size_bytes, fmtBytes),
    barChart("chart-latency", "Latency (ms per run)", ["p50", "p90", "p99"].map((p) => ({
      label: p,
      bars: [
        { series: "original", value: lat(o, p), text: fmtMs(lat(o, p)) },
        { series: "compressed", value: lat(c, p), text: fmtMs(lat(c, p)) },
      ],
    }))),
  ];
  if (isNum(o.throughput_per_s)) figures.push(pairChart("chart-throughput", "Throughput (samples per second)", o.throughput_per_s, c.throughput_per_s, perS));
  if (isNum(o.peak_rss_mb)) figures.push(pairChart("chart-memory", "Peak memory", o.peak_rss_mb, c.peak_rss_mb, mib));
  const f = metrics.fidelity;
  if (f) {
    const rows = [
      ["cosine", f.cosine_similarity],
      ["top-1 agree", f.top1_agreement],
      ["positions", f.position_agreement],
      ["sequences", f.sequence_agreement],
    ].filter(([, v]) => isNum(v));
    figures.push(barChart("chart-fidelity", `Fidelity of the compressed outputs (${f.inputs} inputs, 1 = identical)`,
      rows.map(([label, v]) => ({ label, bars: [{ series: "compressed", value: Math.max(0, v), text: fmtNum(v, 4) }] }))));
  }
  const a = metrics.accuracy;
  if (a) {
    const fmt = a.metric === "mse" ? fmtSci : fmtPct;
    figures.push(pairChart("chart-accuracy", `Accuracy: ${a.metric} on ${a.samples} labelled samples (Δ ${a.metric === "mse" ? fmtSci(a.delta) : fmtNum(a.delta * 100, 2) + " pts"})`,
      a.original, a.compressed, fmt));
  }
  return figures;
}

const BLOCK_ROWS = [
  ["Size", (s) => fmtBytes(s.size_bytes)],
  ["Parameters", (s) => fmtInt(s.param_count)],
  ["MACs (flops)", (s) => fmtInt(s.flops)],
  ["Latency p50", (s) => fmtMs(lat(s, "p50"))],
  ["Latency p90", (s) => fmtMs(lat(s, "p90"))],
  ["Latency p99", (s) => fmtMs(lat(s, "p99"))],
  ["Latency mean", (s) => fmtMs(lat(s, "mean"))],
  ["Latency std", (s) => fmtMs(lat(s, "std"))],
  ["Latency cv", (s) => fmtNum(lat(s, "cv"), 3)],
  ["Timed runs", (s) => fmtInt(s.runs)],
  ["Load time", (s) => fmtMs(s.load_ms)],
  ["Throughput", (s) => perS(s.throughput_per_s)],
  ["Batch size", (s) => fmtInt(s.batch_size)],
  ["Throughput by batch", (s) => (s.throughput_by_batch ? Object.entries(s.throughput_by_batch).map(([b, v]) => `${b}: ${perS(v)}`).join(", ") : "–")],
  ["Peak memory", (s) => mib(s.peak_rss_mb)],
  ["Memory before load", (s) => mib(s.rss_before_load_mb)],
  ["Accuracy", (s) => (s.accuracy ? `${s.accuracy.metric} ${fmtNum(s.accuracy.value, 4)} (${s.accuracy.samples} samples)` : "–")],
];

function pairsOf(metrics) {
  const out = [];
  const add = (label, value) => { if (value !== undefined && value !== null && value !== "–") out.push([label, value]); };
  add("Compression ratio", isNum(metrics.compression_ratio) ? fmtRatio(metrics.compression_ratio) : undefined);
  add("Speedup ratio (p50)", isNum(metrics.speedup_ratio) ? fmtRatio(metrics.speedup_ratio) : undefined);
  add("Pruning rate", isNum(metrics.pruning_rate) ? fmtPct(metrics.pruning_rate) : undefined);
  add("Sparsity", isNum(metrics.sparsity) ? fmtPct(metrics.sparsity) : undefined);
  const q = metrics.quantization_error;
  if (q) add("Weight error", `mean ${fmtSci(q.mean_abs)}, max ${fmtSci(q.max_abs)} over ${q.tensors} tensors`);
  const f = metrics.fidelity;
  if (f) {
    add("Fidelity inputs", `${f.inputs} (${f.samples} samples)`);
    add("Cosine similarity", fmtNum(f.cosine_similarity, 6));
    add("Max abs error", fmtSci(f.max_abs_error));
    add("Mean abs error", fmtSci(f.mean_abs_error));
    if (isNum(f.relative_error)) add("Relative error", fmtSci(f.relative_error));
    if (isNum(f.sqnr_db)) add("SQNR", fmtNum(f.sqnr_db, 1) + " dB");
    if (isNum(f.top1_agreement)) add("Top-1 agreement", fmtPct(f.top1_agreement));
    if (isNum(f.position_agreement)) add("Position agreement", fmtPct(f.position_agreement));
    if (isNum(f.sequence_agreement)) add("Sequence agreement", fmtPct(f.sequence_agreement));
    if (isNum(f.nonfinite_mismatches)) add("inf/nan mismatches", fmtInt(f.nonfinite_mismatches));
  }
  const a = metrics.accuracy;
  if (a && metrics.original) {
    add(`Accuracy (${a.metric})`, `${fmtNum(a.original, 4)} → ${fmtNum(a.compressed, 4)} (Δ ${fmtNum(a.delta, 4)}, ${a.samples} samples)`);
    ["top5", "mae", "exact_match", "position_accuracy"].forEach((k) => {
      if (a[k]) add(k, `${fmtNum(a[k].original, 4)} → ${fmtNum(a[k].compressed, 4)}`);
    });
  }
  const host = metrics.host;
  if (host) add("Measured on", [host.cpu, host.cores + " threads", host.cpu_count ? host.cpu_count + " CPUs" : "", "onnxruntime " + host.onnxruntime, host.provider, (host.features || []).join(" ")].filter(Boolean).join(", "));
  return out;
}

export function metricsTables(metrics) {
  const blocks = sides(metrics);
  const main = table([""].concat(blocks.map(([name]) => name)),
    BLOCK_ROWS.map(([label, f]) => [label, ...blocks.map(([, b]) => f(b))]), { id: "metrics-table", class: "compact" });
  const summary = h("dl", { id: "metrics-summary", class: "facts" });
  pairsOf(metrics).forEach(([label, value]) => summary.append(h("dt", { text: label }), h("dd", { text: value })));
  return [main, summary];
}

export function reportParts(report) {
  const parts = [];
  if (report.passes && report.passes.length) {
    parts.push(h("h3", { text: "Passes" }), h("ul", { id: "pass-list" }, report.passes.map((p) => h("li", {}, [h("code", { text: p.type }), " " + p.summary]))));
  }
  if (report.weights && report.weights.length) {
    parts.push(h("h3", { text: `Worst weight tensors (${Math.min(10, report.weights.length)} of ${report.weights.length})` }),
      table(["Tensor", "Stored as", "Shape", "Relative error", "Max abs"], report.weights.slice(0, 10).map((w) =>
        [w.name, w.kind, "[" + w.shape.join(", ") + "]", fmtSci(w.relative_error), fmtSci(w.max_abs)]), { id: "worst-tensors" }));
  }
  if (report.sensitivity && report.sensitivity.length) {
    parts.push(h("h3", { text: `Most sensitive nodes (${Math.min(10, report.sensitivity.length)} of ${report.sensitivity.length})` }),
      table(["Node", "Op", "Cosine", "Max abs error"], report.sensitivity.slice(0, 10).map((n) =>
        [n.node, n.op_type, fmtNum(n.cosine_similarity, 5), fmtSci(n.max_abs_error)]), { id: "worst-nodes" }));
  }
  return parts;
}
