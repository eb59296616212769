// DOM building and number formatting. Data only ever reaches the page as text, never as markup.

export function h(tag, attrs, children) {
  const node = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([name, value]) => {
    if (value === undefined || value === null || value === false) return;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  });
  [].concat(children || []).forEach((child) => {
    if (child === null || child === undefined || child === false) return;
    node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  });
  return node;
}

export const $ = (id) => document.getElementById(id);
export const isNum = (n) => typeof n === "number" && isFinite(n);

export function fmtBytes(n) {
  if (!isNum(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return (i === 0 ? String(n) : n.toFixed(2)) + " " + units[i];
}

export const fmtInt = (n) => (isNum(n) ? n.toLocaleString("en-US") : "–");
export const fmtNum = (n, digits) => (isNum(n) ? n.toFixed(digits) : "–");
export const fmtMs = (n) => (isNum(n) ? (n < 1 ? n.toFixed(3) : n < 100 ? n.toFixed(2) : n.toFixed(0)) + " ms" : "–");
export const fmtRatio = (n) => (isNum(n) ? n.toFixed(2) + "×" : "–");
export const fmtPct = (n) => (isNum(n) ? (n * 100).toFixed(1) + "%" : "–");

export function fmtSci(n) {
  if (!isNum(n)) return "–";
  return n !== 0 && Math.abs(n) < 1e-3 ? n.toExponential(2) : n.toFixed(4);
}

export function fmtDate(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" });
}

export const shortId = (id) => (id ? String(id).slice(0, 8) : "–");

// A table that stacks into labelled rows on a phone (each cell carries its column's name).
export function table(columns, rows, attrs) {
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col", text: c })));
  const body = rows.map((cells) =>
    h("tr", {}, cells.map((cell, i) => {
      const td = h(i === 0 ? "th" : "td", { scope: i === 0 ? "row" : null, "data-label": columns[i] });
      td.append(typeof cell === "string" ? document.createTextNode(cell) : cell);
      return td;
    }))
  );
  const built = h("table", Object.assign({ class: "stack" }, attrs || {}), [h("thead", {}, head), h("tbody", {}, body)]);
  // Past the page's width a table scrolls in its own box; the page itself never scrolls sideways.
  return h("div", { class: "table-wrap" }, [built]);
}

export function facts(dl, pairs) {
  dl.replaceChildren();
  pairs.forEach(([label, value]) => {
    if (value === undefined || value === null || value === "") return;
    dl.append(h("dt", { text: label }), h("dd", {}, typeof value === "string" ? value : [value]));
  });
}

export function link(href, text) {
  return h("a", { href, text });
}

// A job as lists name it: its preset, else its passes.
export function jobLabel(job) {
  if (job.preset) return job.preset;
  const passes = (job.recipe && job.recipe.passes) || [];
  return passes.map((p) => p.type).join(" + ") || job.kind;
}
