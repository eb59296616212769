// Hand-written SVG charts: horizontal bars (one series or grouped) and a scatter plot.
// They scale with their box (viewBox, width 100%), so a phone shows them whole.
import { h, isNum } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
const W = 400; // viewBox width; the figure's CSS width scales it
const LABEL_W = 84;
const VALUE_W = 84;
const BAR_H = 18;
const GAP = 6;
export const SERIES = { original: "series-original", compressed: "series-compressed" };

function s(tag, attrs, text) {
  const node = document.createElementNS(NS, tag);
  Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, String(v)));
  if (text !== undefined) node.textContent = text;
  return node;
}

function figure(id, title, svg, summary, legend) {
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title + ": " + summary);
  svg.setAttribute("width", "100%");
  return h("figure", { id, class: "chart" }, [h("figcaption", { text: title }), svg, legend || null]);
}

function legendOf(names) {
  return h("p", { class: "legend" }, names.map((name) =>
    h("span", { class: "key " + (SERIES[name] || "") }, [h("span", { class: "swatch", "aria-hidden": "true" }), name])
  ));
}

// rows: [{label, bars: [{series, value, text}]}]; each bar's length is its value against the largest.
export function barChart(id, title, rows) {
  const values = rows.flatMap((r) => r.bars.map((b) => b.value)).filter(isNum);
  const max = Math.max(...values, 0) || 1;
  const per = rows.length ? rows[0].bars.length : 1;
  const rowH = per * BAR_H + (per - 1) * 2 + GAP * 2;
  const height = rows.length * rowH;
  const svg = s("svg", { viewBox: `0 0 ${W} ${height}`, class: "bars" });
  const summary = [];
  rows.forEach((row, r) => {
    const top = r * rowH + GAP;
    svg.appendChild(s("text", { x: 0, y: top + (per * (BAR_H + 2)) / 2 + 3, class: "axis-label" }, row.label));
    row.bars.forEach((bar, b) => {
      const y = top + b * (BAR_H + 2);
      const len = isNum(bar.value) ? Math.max(1, ((W - LABEL_W - VALUE_W) * bar.value) / max) : 0;
      const rect = s("rect", { x: LABEL_W, y, width: len, height: BAR_H, rx: 2, class: "bar " + (SERIES[bar.series] || "") });
      rect.appendChild(s("title", {}, `${row.label}, ${bar.series}: ${bar.text}`));
      svg.appendChild(rect);
      svg.appendChild(s("text", { x: LABEL_W + len + 4, y: y + BAR_H - 5, class: "value", "data-series": bar.series }, bar.text));
      summary.push(`${row.label} ${bar.series} ${bar.text}`);
    });
  });
  const names = Array.from(new Set(rows.flatMap((r) => r.bars.map((b) => b.series))));
  return figure(id, title, svg, summary.join("; "), names.length > 1 ? legendOf(names) : null);
}

// One row per side: the simplest chart of one quantity on both models.
export function pairChart(id, title, original, compressed, format) {
  return barChart(id, title, [
    { label: "original", bars: [{ series: "original", value: original, text: format(original) }] },
    { label: "compressed", bars: [{ series: "compressed", value: compressed, text: format(compressed) }] },
  ]);
}

function ticks(min, max) {
  const span = max - min || Math.abs(max) || 1;
  return [min, min + span / 2, min + span];
}

// Label boxes placed greedily: beside the dot, else above or below it, never over another.
function placeLabels(points, width, charW) {
  const boxes = [];
  const overlaps = (b) => boxes.some((o) => b.x1 < o.x2 && b.x2 > o.x1 && b.y1 < o.y2 && b.y2 > o.y1);
  return points.map((p) => {
    const w = p.label.length * charW;
    const end = p.cx + 8 + w > width;
    const x = end ? p.cx - 8 : p.cx + 8;
    const box = (y) => ({ x1: end ? x - w : x, x2: end ? x : x + w, y1: y - 10, y2: y + 3 });
    const tries = [p.cy + 4, p.cy - 10, p.cy + 18, p.cy - 24, p.cy + 32, p.cy - 38, p.cy + 46];
    const y = tries.find((t) => !overlaps(box(t)) && !overlaps({ x1: p.cx - 6, x2: p.cx + 6, y1: p.cy - 6, y2: p.cy + 6 })) ?? tries[0];
    boxes.push(box(y));
    return { x, y, anchor: end ? "end" : "start" };
  });
}

// points: [{x, y, label, tone}]: a dot per point, its label beside it; axes from zero. `width`
// is the box it will fill, so text keeps its size on a desktop and on a phone.
export function scatterChart(id, title, points, axes, width) {
  const W2 = Math.max(300, Math.min(760, Math.round(width || W)));
  const H = Math.round(Math.min(360, Math.max(240, W2 * 0.5)));
  const left = 52;
  const bottom = 36;
  const plotW = W2 - left - 14;
  const plotH = H - bottom - 24;
  const shown = points.filter((p) => isNum(p.x) && isNum(p.y));
  const xMax = Math.max(...shown.map((p) => p.x), 0) * 1.1 || 1;
  const yMax = Math.max(...shown.map((p) => p.y), 0) * 1.15 || 1;
  const px = (x) => left + (plotW * x) / xMax;
  const py = (y) => 24 + plotH - (plotH * y) / yMax;
  const svg = s("svg", { viewBox: `0 0 ${W2} ${H}`, class: "scatter" });
  svg.appendChild(s("line", { x1: left, y1: 24 + plotH, x2: left + plotW, y2: 24 + plotH, class: "axis" }));
  svg.appendChild(s("line", { x1: left, y1: 20, x2: left, y2: 24 + plotH, class: "axis" }));
  ticks(0, xMax).forEach((t, i) => svg.appendChild(s("text", { x: px(t), y: H - 22, class: "tick", "text-anchor": ["start", "middle", "end"][i] }, axes.xFmt(t))));
  ticks(0, yMax).forEach((t) => svg.appendChild(s("text", { x: left - 4, y: py(t) + 3, class: "tick", "text-anchor": "end" }, axes.yFmt(t))));
  svg.appendChild(s("text", { x: left + plotW, y: H - 5, class: "axis-label", "text-anchor": "end" }, axes.x + " →"));
  svg.appendChild(s("text", { x: left + 6, y: 14, class: "axis-label" }, "↑ " + axes.y));
  const placed = shown.map((p) => Object.assign({ cx: px(p.x), cy: py(p.y) }, p));
  const labels = placeLabels(placed, W2, 6.2);
  placed.forEach((p, i) => {
    const dot = s("circle", { cx: p.cx, cy: p.cy, r: 6, class: "dot " + (p.tone || "") });
    dot.appendChild(s("title", {}, `${p.label}: ${axes.xFmt(p.x)}, ${axes.yFmt(p.y)}`));
    svg.appendChild(dot);
  });
  placed.forEach((p, i) => {
    svg.appendChild(s("text", { x: labels[i].x, y: labels[i].y, class: "point-label", "text-anchor": labels[i].anchor }, p.label));
  });
  const summary = placed.map((p) => `${p.label} at ${axes.xFmt(p.x)}, ${axes.yFmt(p.y)}`);
  const fig = figure(id, title, svg, summary.join("; "));
  fig.classList.add("wide");
  return fig;
}
