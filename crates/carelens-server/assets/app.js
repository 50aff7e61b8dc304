// carelens doctors' view: sign in, my patients, one patient's suggested diagnoses with their
// evidence and history. Plain DOM, no framework; text goes in through textContent only.
"use strict";

const $ = (sel) => document.querySelector(sel);
const el = (tag, props = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("aria") || k === "role" || k === "for") e.setAttribute(k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase()), v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
};

const session = {
  get token() { return sessionStorage.getItem("carelens.token"); },
  get user() { return JSON.parse(sessionStorage.getItem("carelens.user") || "null"); },
  set(token, user) { sessionStorage.setItem("carelens.token", token); sessionStorage.setItem("carelens.user", JSON.stringify(user)); },
  clear() { sessionStorage.removeItem("carelens.token"); sessionStorage.removeItem("carelens.user"); },
};

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (session.token) headers.Authorization = "Bearer " + session.token;
  if (options.json !== undefined) { headers["Content-Type"] = "application/json"; options.body = JSON.stringify(options.json); }
  const resp = await fetch(path, { ...options, headers });
  if (resp.status === 401) { session.clear(); route(); throw new ApiError(401, "signed_out", "Your session ended; sign in again."); }
  if (!resp.ok) {
    let body = null;
    try { body = await resp.json(); } catch (_) { /* not JSON */ }
    const e = body && body.error ? body.error : { code: "http_" + resp.status, message: resp.statusText };
    throw new ApiError(resp.status, e.code, e.message);
  }
  return resp;
}

function show(view) {
  for (const v of ["login-view", "list-view", "patient-view"]) $("#" + v).hidden = v !== view;
  const u = session.user;
  $("#whoami").textContent = u ? `${u.username} (${u.role})` : "";
  $("#signout").hidden = !u;
}

const fmtDate = (s) => (s ? new Date(s).toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" }) : "—");
const pct = (p) => (p * 100).toFixed(p < 0.1 ? 1 : 0) + " %";

// ---- sign in --------------------------------------------------------------------------
async function signIn(ev) {
  ev.preventDefault();
  $("#login-error").textContent = "";
  try {
    const resp = await api("/api/v1/auth/login", { method: "POST", json: { username: $("#username").value.trim(), password: $("#password").value } });
    const body = await resp.json();
    session.set(body.token, body.user);
    $("#password").value = "";
    location.hash = "#/patients";
    route();
  } catch (e) {
    $("#login-error").textContent = e.code === "bad_credentials" ? "Unknown user name or wrong password." : e.message;
  }
}

// ---- my patients ----------------------------------------------------------------------
let searchTimer = null;
async function loadPatients() {
  show("list-view");
  const q = $("#search").value.trim();
  $("#list-status").textContent = "Loading…";
  try {
    const resp = await api("/api/v1/patients?limit=100" + (q ? "&q=" + encodeURIComponent(q) : ""));
    const body = await resp.json();
    const tbody = $("#patients tbody");
    tbody.replaceChildren(...body.patients.map((p) => el("tr", {},
      el("td", {}, el("a", { href: "#/patients/" + p.id, class: "patient-link", dataset: { id: p.id } }, `${p.family_name}, ${p.given_name}`)),
      el("td", { class: "mono" }, p.id),
      el("td", {}, String(p.age)),
      el("td", {}, fmtDate(p.next_visit)),
      el("td", {}, fmtDate(p.last_visit)))));
    $("#list-status").textContent = body.patients.length === 0 ? "No patients match." : `${body.patients.length}${body.truncated ? "+" : ""} patients`;
  } catch (e) {
    $("#list-status").textContent = e.message;
  }
}

// ---- one patient ----------------------------------------------------------------------
const objectUrls = [];
async function heatmapImage(h) {
  const resp = await api(h.url);
  const url = URL.createObjectURL(await resp.blob());
  objectUrls.push(url);
  return el("figure", { class: "heatmap" },
    el("img", { src: url, class: "heatmap", alt: `Heatmap: where ${h.model} saw ${h.label.replace(/_/g, " ")} (red = masking this region lowers the finding most)` }),
    el("figcaption", {}, `${h.model} · ${h.label.replace(/_/g, " ")} · ${h.method}`));
}

function sourcesList(d) {
  return el("ul", { class: "sources" }, ...d.sources.map((s) => el("li", {},
    `${s.model}${s.label ? " · " + s.label.replace(/_/g, " ") : ""}: ${pct(s.probability)}` +
    (s.contribution !== undefined ? ` (${s.contribution >= 0 ? "+" : ""}${s.contribution.toFixed(2)} log-odds)` : ""))));
}

function featureList(f) {
  return el("div", { class: "features" },
    el("p", { class: "muted" }, `${f.model}: ${f.method}`),
    el("ul", {}, ...f.features.map((x) => el("li", { class: x.direction },
      `${x.feature}${x.value !== undefined && x.value !== null ? " = " + (+x.value.toFixed(2)) : ""} ${x.direction === "raises" ? "▲ raises" : "▼ lowers"} (${x.log_odds >= 0 ? "+" : ""}${x.log_odds.toFixed(2)})`))));
}

function predictionCard(patient, set, d) {
  const verdict = el("p", { class: "verdict", role: "status" }, d.feedback ? `You ${d.feedback} this.` : "");
  const decide = async (v, btns) => {
    btns.forEach((b) => (b.disabled = true));
    try {
      await api(`/api/v1/patients/${patient}/feedback`, { method: "POST", json: { set_version: set.version, code: d.code, verdict: v } });
      verdict.textContent = `You ${v} this.`;
      card.dataset.feedback = v;
    } catch (e) {
      verdict.textContent = e.message;
    } finally {
      btns.forEach((b) => (b.disabled = false));
    }
  };
  const confirm = el("button", { type: "button", class: "confirm" }, "Confirm");
  const reject = el("button", { type: "button", class: "reject" }, "Reject");
  confirm.onclick = () => decide("confirmed", [confirm, reject]);
  reject.onclick = () => decide("rejected", [confirm, reject]);
  const bar = el("div", { class: "bar", role: "meter", ariaValuemin: "0", ariaValuemax: "100", ariaValuenow: String(Math.round(d.probability * 100)), ariaLabel: "probability" },
    el("span", { class: "fill band-" + d.risk_band }));
  bar.firstChild.style.width = (d.probability * 100).toFixed(1) + "%";
  if (d.threshold !== undefined) {
    const mark = el("span", { class: "threshold", title: `threshold ${pct(d.threshold)}` });
    mark.style.left = (d.threshold * 100).toFixed(1) + "%";
    bar.append(mark);
  }
  const card = el("article", { class: "prediction-card" + (d.known ? " known" : ""), dataset: { code: d.code } },
    el("h3", {}, `${d.display} `, el("span", { class: "mono muted" }, d.code)),
    el("p", { class: "prob" }, el("strong", {}, pct(d.probability)), " ",
      el("span", { class: "band band-" + d.risk_band }, d.known ? "known" : d.risk_band + " risk"),
      d.threshold !== undefined ? el("span", { class: "muted" }, ` · threshold ${pct(d.threshold)}`) : ""),
    bar,
    el("details", {}, el("summary", {}, `Sources (${d.sources.length})`), sourcesList(d)),
    ...d.features.map(featureList));
  const figures = el("div", { class: "heatmaps" });
  card.append(figures);
  for (const h of d.heatmaps) heatmapImage(h).then((f) => figures.append(f), (e) => figures.append(el("p", { class: "error" }, e.message)));
  if (!d.known) card.append(el("div", { class: "actions" }, confirm, reject), verdict);
  return card;
}

async function loadPatient(id) {
  show("patient-view");
  objectUrls.splice(0).forEach((u) => URL.revokeObjectURL(u));
  for (const s of ["#patient-header", "#patient-meta", "#patient-status", "#pred-meta", "#tl-hidden"]) $(s).textContent = "";
  $("#predictions").replaceChildren();
  $("#timeline").replaceChildren();
  try {
    const tl = await (await api(`/api/v1/patients/${id}/history?limit=200`)).json();
    const p = tl.patient;
    $("#patient-header").textContent = `${p.given_name} ${p.family_name}`;
    $("#patient-meta").textContent = `${p.id} · ${p.age} years · ${p.sex} · ${p.city}`;
    if (tl.hidden_categories.length) $("#tl-hidden").textContent = "Not shared with you: " + tl.hidden_categories.join(", ").replace(/_/g, " ");
    let lastYear = null;
    const items = [];
    for (const e of tl.entries) {
      const year = e.date.slice(0, 4);
      if (year !== lastYear) { items.push(el("li", { class: "year" }, year)); lastYear = year; }
      items.push(el("li", { class: "entry kind-" + e.kind },
        el("time", { dateTime: e.date }, e.date), " ",
        el("span", { class: "kind" }, e.kind.replace(/_/g, " ")), " ",
        el("strong", {}, e.title), e.detail ? " — " + e.detail : ""));
    }
    $("#timeline").replaceChildren(...items);
  } catch (e) {
    $("#patient-status").textContent = e.message;
    return;
  }
  try {
    const set = await (await api(`/api/v1/patients/${id}/predictions`)).json();
    $("#pred-meta").textContent = `Version ${set.version}, ${fmtDate(set.created_at)} · fusion: ${set.fusion.method} · ${set.models.length} models`;
    $("#predictions").replaceChildren(...set.predictions.map((d) => predictionCard(id, set, d)));
  } catch (e) {
    $("#pred-meta").textContent = e.code === "no_prediction_set" ? "No predictions for this patient yet." : e.message;
  }
}

// ---- routing --------------------------------------------------------------------------
function route() {
  if (!session.token) { show("login-view"); $("#username").focus(); return; }
  const m = location.hash.match(/^#\/patients\/([A-Za-z0-9]+)$/);
  if (m) loadPatient(m[1]); else loadPatients();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", signIn);
  $("#signout").addEventListener("click", () => { session.clear(); location.hash = ""; route(); });
  $("#search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(loadPatients, 250); });
  window.addEventListener("hashchange", route);
  route();
});
