// The JSON API as the pages call it: the tenant's key from session storage, problem+json errors
// with their remedy, uploads through XMLHttpRequest so their progress can be shown.
import { remedyFor } from "./remedies.js";

const KEY = "modelpress-api-key";
const authOn = () => document.body.dataset.auth === "on";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || "HTTP " + status);
    this.status = status;
    this.code = problem.code || "http_" + status;
    this.title = problem.title || "";
    this.field = problem.field || "";
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: "Bearer " + key } : {};
}

// Ask for the key once; `onKey` runs again when the person gives one (the page reloads its data).
let retry = () => location.reload();

export function askForKey(message) {
  const form = document.getElementById("key-form");
  const error = document.getElementById("key-error");
  form.hidden = false;
  error.hidden = !message;
  error.textContent = message || "";
  document.getElementById("api-key").focus();
}

export function setupKey(onKey) {
  retry = onKey || retry;
  const form = document.getElementById("key-form");
  const forget = document.getElementById("forget-key");
  forget.hidden = !apiKey();
  forget.addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    location.reload();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = document.getElementById("api-key").value.trim();
    if (!key) return askForKey("Enter the key your administrator gave you.");
    sessionStorage.setItem(KEY, key);
    form.hidden = true;
    forget.hidden = false;
    retry();
  });
  // True when the page may call the API now; else it waits for the key.
  if (authOn() && !apiKey()) {
    askForKey("");
    return false;
  }
  return true;
}

function parse(status, text) {
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = null;
  }
  if (status >= 200 && status < 300) return data;
  if (status === 401) askForKey("The API did not accept this key: enter another one.");
  const problem = data && typeof data === "object" ? data : { detail: text.slice(0, 300) };
  throw new ApiError(status, problem);
}

export async function api(method, url, body) {
  const init = { method, headers: Object.assign({ Accept: "application/json" }, authHeaders()) };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(url, init);
  return parse(resp.status, await resp.text());
}

// A multipart upload whose progress `onProgress(fraction)` sees as the browser sends it.
export function upload(url, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("Accept", "application/json");
    const headers = authHeaders();
    Object.keys(headers).forEach((name) => xhr.setRequestHeader(name, headers[name]));
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total);
    });
    xhr.addEventListener("load", () => {
      try {
        resolve(parse(xhr.status, xhr.responseText));
      } catch (err) {
        reject(err);
      }
    });
    xhr.addEventListener("error", () => reject(new Error("the connection failed during the upload")));
    xhr.send(form);
  });
}

// Every page of a list endpoint, up to `max` rows.
export async function listAll(url, max) {
  const items = [];
  let cursor = null;
  do {
    const sep = url.includes("?") ? "&" : "?";
    const page = await api("GET", url + sep + "limit=200" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

// An error as a person reads it: what happened, its code, and what to do about it.
export function describe(err) {
  if (!(err instanceof ApiError)) return { text: err && err.message ? err.message : String(err), remedy: "" };
  const head = err.title ? err.title + " [" + err.code + "]" : "[" + err.code + "]";
  return { text: head + ": " + err.message, remedy: remedyFor(err.code, err.message) };
}

export function showError(prefix, err, box) {
  const target = box || document.getElementById("error");
  const { text, remedy } = describe(err);
  target.replaceChildren();
  const p = document.createElement("p");
  p.textContent = prefix ? prefix + ": " + text : text;
  target.appendChild(p);
  if (remedy) {
    const r = document.createElement("p");
    r.className = "remedy";
    r.textContent = "What to do: " + remedy;
    target.appendChild(r);
  }
  target.hidden = false;
}

// A download: a plain link without keys; with keys the file is fetched with the key, then saved.
export async function download(url, filename) {
  if (!apiKey()) {
    location.assign(url);
    return;
  }
  const resp = await fetch(url, { headers: authHeaders() });
  if (!resp.ok) throw new ApiError(resp.status, await resp.json().catch(() => ({})));
  const href = URL.createObjectURL(await resp.blob());
  const link = document.createElement("a");
  link.href = href;
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10000);
}
