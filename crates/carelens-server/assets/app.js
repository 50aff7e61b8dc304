// carelens web view. Doctors: sign in, my patients, one patient's suggested diagnoses with their
// evidence and history, and the practice calendar. Patients: find a practice, book an opening
// (sharing chosen record categories), see and cancel their appointments. Analysts: population
// KPIs with server-drawn SVG charts, tables and CSV.
// Plain DOM, no framework; text goes in through textContent only.
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
  for (const v of ["login-view", "list-view", "patient-view", "kpi-view", "booking-view", "calendar-view"]) $("#" + v).hidden = v !== view;
  const u = session.user;
  $("#whoami").textContent = u ? `${u.username} (${u.role})` : "";
  $("#signout").hidden = !u;
  const links = !u ? [] : u.role === "doctor" ? [["#/patients", "My patients"], ["#/calendar", "Calendar"]]
    : u.role === "patient" ? [["#/book", "Book an appointment"]] : [];
  $("#nav").replaceChildren(...links.map(([href, text]) => el("a", { href, class: location.hash.startsWith(href) ? "current" : "" }, text)));
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

// Timeline entries (newest first) as list items, with a heading per year.
function timelineItems(entries) {
  let lastYear = null;
  const items = [];
  for (const e of entries) {
    const year = e.date.slice(0, 4);
    if (year !== lastYear) { items.push(el("li", { class: "year" }, year)); lastYear = year; }
    items.push(el("li", { class: "entry kind-" + e.kind, dataset: { kind: e.kind } },
      el("time", { dateTime: e.date }, e.date), " ",
      el("span", { class: "kind" }, e.kind.replace(/_/g, " ")), " ",
      el("strong", {}, e.title), e.detail ? " — " + e.detail : ""));
  }
  return items;
}

// The signed-in patient's own timeline, filtered by what and when.
async function loadMyRecord() {
  const me = session.user && session.user.patient;
  const list = $("#my-record");
  if (!me) { list.replaceChildren(); return; }
  const q = new URLSearchParams({ limit: "500" });
  for (const [key, sel] of [["category", "#mr-category"], ["from", "#mr-from"], ["to", "#mr-to"]]) {
    if ($(sel).value) q.set(key, $(sel).value);
  }
  $("#mr-status").className = "muted";
  $("#mr-status").textContent = "Loading…";
  try {
    const tl = await (await api(`/api/v1/patients/${me}/history?${q}`)).json();
    list.replaceChildren(...timelineItems(tl.entries));
    $("#mr-status").textContent = tl.entries.length ? `${tl.entries.length} entries` : "Nothing recorded for this choice.";
  } catch (e) {
    list.replaceChildren();
    $("#mr-status").className = "error";
    $("#mr-status").textContent = e.message;
  }
}

async function loadPatient(id) {
  show("patient-view");
  objectUrls.splice(0).forEach((u) => URL.revokeObjectURL(u));
  for (const s of ["#patient-header", "#patient-meta", "#patient-status", "#pred-meta", "#tl-hidden"]) $(s).textContent = "";
  const stale = document.querySelector("#emergency-form");
  if (stale) stale.remove();
  $("#predictions").replaceChildren();
  $("#timeline").replaceChildren();
  try {
    const tl = await (await api(`/api/v1/patients/${id}/history?limit=200`)).json();
    const p = tl.patient;
    $("#patient-header").textContent = `${p.given_name} ${p.family_name}`;
    $("#patient-meta").textContent = `${p.id} · ${p.age} years · ${p.sex} · ${p.city}`;
    if (tl.hidden_categories.length) $("#tl-hidden").textContent = "Not shared with you: " + tl.hidden_categories.join(", ").replace(/_/g, " ");
    $("#timeline").replaceChildren(...timelineItems(tl.entries));
  } catch (e) {
    $("#patient-status").textContent = e.message;
    if (e.code === "not_in_care" && session.user && session.user.role === "doctor") emergencyForm(id);
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

// Break-the-glass: a doctor outside the care relationship may take 4 hours of access in an
// emergency, with a reason the patient will see.
function emergencyForm(id) {
  const reason = el("input", { id: "emergency-reason", required: true, minLength: 10, maxLength: 500, placeholder: "e.g. unconscious in the emergency room, no relative reachable" });
  const status = el("p", { role: "alert", class: "error" });
  const form = el("form", { id: "emergency-form", class: "emergency" },
    el("p", {}, "In an emergency you can open this record for 4 hours. The patient will see that you did, and why; it is logged as break-the-glass access."),
    el("label", { for: "emergency-reason" }, "Reason"), reason,
    el("button", { type: "submit", class: "reject" }, "Open the record in an emergency"), status);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api(`/api/v1/patients/${id}/emergency-access`, { method: "POST", json: { reason: reason.value.trim() } });
      form.remove();
      await loadPatient(id);
    } catch (e) {
      status.textContent = e.message;
    }
  });
  $("#patient-status").after(form);
}

// ---- analysts: population KPIs ------------------------------------------------------------
let catalogue = null;
const PERCENT = (unit) => unit.startsWith("proportion") || unit.startsWith("booked share");

function kpiParams(format) {
  const k = catalogue.kpis.find((x) => x.name === $("#kpi-name").value);
  const by = [...document.querySelectorAll("#kpi-by input:checked")].map((i) => i.value);
  const p = new URLSearchParams();
  if (by.length) p.set("by", by.join(","));
  if (by.includes("period") || k.name === "incidence" || k.name === "calibration_drift") p.set("period", $("#kpi-period").value);
  if ($("#kpi-from").value) p.set("from", $("#kpi-from").value);
  if ($("#kpi-to").value) p.set("to", $("#kpi-to").value);
  if (format === "csv") p.set("format", "csv");
  return `/api/v1/kpis/${encodeURIComponent(k.name)}` + (format === "svg" ? "/chart.svg?" : "?") + p.toString();
}

function kpiStrata() {
  const k = catalogue.kpis.find((x) => x.name === $("#kpi-name").value);
  $("#kpi-definition").textContent = k.definition;
  $("#kpi-by").replaceChildren(el("legend", {}, "Stratify by"), ...k.strata.map((s) => {
    const id = "by-" + s;
    return el("label", { for: id }, el("input", { type: "checkbox", id, value: s, checked: k.default_by.includes(s) }), " " + s.replace(/_/g, " "));
  }));
}

async function loadKpis() {
  show("kpi-view");
  try {
    if (!catalogue) {
      catalogue = await (await api("/api/v1/kpis")).json();
      $("#kpi-name").replaceChildren(...catalogue.kpis.map((k) => el("option", { value: k.name }, `${k.title} (${k.topic})`)));
      kpiStrata();
    }
    const s = catalogue.snapshot;
    $("#kpi-snapshot").textContent = s
      ? `Snapshot as of ${s.as_of}: ${s.persons.toLocaleString()} persons, pseudonymised. Cells with fewer than ${catalogue.min_k} persons are suppressed.`
      : "No analytics snapshot yet: run `carelens export analytics`.";
    if (s) await runKpi();
  } catch (e) {
    $("#kpi-status").textContent = e.message;
  }
}

let chartUrl = null;
let kpiRun = 0;
async function runKpi(ev) {
  if (ev) ev.preventDefault();
  const mine = ++kpiRun;
  $("#kpi-status").textContent = "Computing…";
  try {
    const [chart, result] = await Promise.all([api(kpiParams("svg")), api(kpiParams()).then((r) => r.json())]);
    const blob = await chart.blob();
    if (mine !== kpiRun) return; // a newer request owns the view
    if (chartUrl) URL.revokeObjectURL(chartUrl);
    chartUrl = URL.createObjectURL(blob);
    $("#kpi-chart").src = chartUrl;
    $("#kpi-chart").alt = `Chart: ${result.title}`;
    const cols = [...result.key_columns, ...result.measures];
    $("#kpi-table thead").replaceChildren(el("tr", {}, ...cols.map((c) => el("th", { scope: "col" }, c.replace(/_/g, " ")))));
    const pctCols = new Set(["value", "ci_low", "ci_high", "recorded", "crude"]);
    const fmt = (m, v) => v === null || v === undefined ? "–"
      : PERCENT(result.unit) && pctCols.has(m) ? (100 * v).toFixed(1) + " %"
      : Number.isInteger(v) ? v.toLocaleString() : v.toFixed(2);
    $("#kpi-table tbody").replaceChildren(...result.rows.map((r) => el("tr", { class: r.suppressed ? "suppressed" : "" },
      ...result.key_columns.map((c) => el("td", {}, r[c])),
      ...result.measures.map((m, i) => el("td", { class: "num" }, r.suppressed ? (i === 0 ? "suppressed" : "") : fmt(m, r[m]))))));
    $("#kpi-status").textContent = `${result.title}, ${result.from} to ${result.to}: ${result.rows.length} cells` +
      (result.suppressed_cells ? `, ${result.suppressed_cells} suppressed (fewer than ${result.k} persons, or protecting such a cell).` : ".");
  } catch (e) {
    if (mine === kpiRun) $("#kpi-status").textContent = e.message;
  }
}

async function downloadCsv() {
  try {
    const blob = await (await api(kpiParams("csv"))).blob();
    const a = el("a", { href: URL.createObjectURL(blob), download: $("#kpi-name").value + ".csv" });
    document.body.append(a);
    a.click();
    a.remove();
  } catch (e) {
    $("#kpi-status").textContent = e.message;
  }
}

// ---- booking (patients) ----------------------------------------------------------------
// The values of the API's `specialty` parameter (carelens_domain::Specialty).
const SPECIALTIES = ["general_practice", "internal_medicine", "cardiology", "pneumology", "nephrology", "neurology",
  "orthopaedics", "psychiatry", "psychotherapy", "gynaecology", "radiology", "paediatrics", "dermatology"];
// Record categories a patient may share at booking; mental health only when ticked.
const SHARE = [["medication", "Current medication", true], ["allergy", "Allergies", true], ["diagnosis", "Diagnoses", false],
  ["observation", "Lab results", false], ["vaccination", "Vaccinations", false], ["procedure", "Procedures and events", false],
  ["imaging", "Imaging", false], ["mental_health", "Mental health", false]];
const human = (s) => s.replace(/_/g, " ");
const fmtTime = (s) => new Date(s).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
const fmtDay = (s) => new Date(s).toLocaleDateString(undefined, { weekday: "long", day: "numeric", month: "long" });
const dayKey = (s) => { const d = new Date(s); return d.getFullYear() + "-" + (d.getMonth() + 1) + "-" + d.getDate(); };
const providerNames = new Map();
let bookPage = 0;
let chosen = null; // { provider, name, start }
let bookingKey = null; // one Idempotency-Key per attempt, reused by a retry

function initBooking() {
  if ($("#bk-specialty").options.length > 1) return;
  $("#bk-specialty").append(...SPECIALTIES.map((s) => el("option", { value: s }, human(s))));
  $("#bk-share").append(...SHARE.map(([value, text, on]) =>
    el("label", {}, el("input", { type: "checkbox", name: "share", value, checked: on }), text)));
}

async function loadBooking() {
  show("booking-view");
  initBooking();
  const dl = $("#download-record");
  if (!dl.dataset.bound) {
    dl.dataset.bound = "1";
    dl.addEventListener("click", downloadRecord);
    $("#my-record-filter").addEventListener("submit", (ev) => { ev.preventDefault(); loadMyRecord(); });
  }
  await Promise.all([searchProviders(), loadMyAppointments(), loadPrescriptions(), loadMyRecord(), loadConsents(), loadAccessLog()]);
}

async function loadPrescriptions() {
  const tbody = $("#my-prescriptions tbody");
  const me = session.user && session.user.patient;
  if (!me) { tbody.replaceChildren(); return; }
  try {
    const list = await (await api(`/api/v1/patients/${me}/prescriptions`)).json();
    tbody.replaceChildren(...(list.length ? list.map((p) => {
      const ask = el("button", { type: "button", class: "refill" }, p.refill_pending ? "Refill requested" : "Request refill");
      ask.disabled = p.refill_pending || p.refills_left === 0 || p.status !== "active";
      ask.addEventListener("click", async () => {
        try { await api(`/api/v1/patients/${me}/prescriptions/${p.id}/refill-request`, { method: "POST" }); await loadPrescriptions(); }
        catch (e) { alert(e.message); }
      });
      // Reminder times (Berlin), comma-separated; empty turns them off.
      const times = el("input", { type: "text", class: "reminder-times", value: p.reminder_times.join(", "),
        placeholder: "e.g. 08:00, 20:00", "aria-label": `Reminder times for ${p.display}`, size: 14 });
      const save = el("button", { type: "button", class: "save-reminders" }, "Save");
      const note = el("span", { class: "muted reminder-note" }, p.reminder_times.length ? "by e-mail" : "off");
      times.disabled = save.disabled = p.status !== "active";
      save.addEventListener("click", async () => {
        const list = times.value.split(/[,\s]+/).filter((t) => t);
        try {
          const r = await (await api(`/api/v1/patients/${me}/prescriptions/${p.id}/reminders`, { method: "PUT", json: { times: list } })).json();
          note.className = "muted reminder-note";
          note.textContent = list.length ? `${r.scheduled} reminders scheduled` : "off";
        } catch (e) { note.className = "error reminder-note"; note.textContent = e.message; }
      });
      return el("tr", { class: p.current ? "" : "inactive", dataset: { id: p.id } },
        el("td", {}, `${p.display} (${p.strength})` + (p.signature_valid ? "" : " — signature invalid, ask your practice")),
        el("td", {}, p.dose), el("td", {}, p.covered_until), el("td", {}, String(p.refills_left)), el("td", {}, ask),
        el("td", {}, times, " ", save, " ", note));
    }) : [el("tr", {}, el("td", { colSpan: 6, class: "muted" }, "No prescriptions."))]));
  } catch (e) {
    tbody.replaceChildren(el("tr", {}, el("td", { colSpan: 6, class: "error" }, e.message)));
  }
}

async function loadConsents() {
  const tbody = $("#my-consents tbody");
  try {
    const list = await (await api("/api/v1/me/consents")).json();
    tbody.replaceChildren(...(list.length ? list.map((c) => {
      const revoke = el("button", { type: "button", class: "reject revoke" }, "Revoke");
      revoke.hidden = !c.active;
      revoke.addEventListener("click", async () => {
        if (!confirm("Revoke this permission now?")) return;
        try { await api(`/api/v1/me/consents/${c.id}/revoke`, { method: "POST" }); await loadConsents(); await loadAccessLog(); }
        catch (e) { alert(e.message); }
      });
      const state = c.revoked_at ? "revoked " + fmtDate(c.revoked_at) : c.active ? "in force" : "expired";
      return el("tr", { class: (c.emergency_reason ? "emergency " : "") + (c.active ? "" : "inactive"), dataset: { id: c.id, provider: c.provider || "" } },
        el("td", {}, (c.provider_name || c.provider || "") + (c.emergency_reason ? ` — emergency access: “${c.emergency_reason}”` : "")),
        el("td", {}, c.categories.map(human).join(", ")), el("td", {}, fmtDate(c.valid_until)),
        el("td", { class: "state" }, state), el("td", {}, revoke));
    }) : [el("tr", {}, el("td", { colSpan: 5, class: "muted" }, "None: only the practices treating you see your record."))]));
  } catch (e) {
    tbody.replaceChildren(el("tr", {}, el("td", { colSpan: 5, class: "error" }, e.message)));
  }
}

async function downloadRecord() {
  const status = $("#download-status");
  status.textContent = "";
  try {
    const me = session.user && session.user.patient;
    if (!me) throw new Error("This account is not linked to a patient record.");
    const blob = await (await api(`/api/v1/patients/${me}/fhir`)).blob();
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: "my-record.fhir.json" });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    status.textContent = `Downloaded (${Math.round(blob.size / 1024)} KB).`;
    await loadAccessLog();
  } catch (e) {
    status.textContent = e.message;
  }
}

async function loadAccessLog() {
  const tbody = $("#access-log tbody");
  try {
    const log = await (await api("/api/v1/me/access-log?limit=50")).json();
    tbody.replaceChildren(...(log.length ? log.map((e) => el("tr", { class: e.allowed ? "" : "denied", dataset: { seq: e.seq } },
      el("td", {}, `${fmtDate(e.at)} ${fmtTime(e.at)}`), el("td", {}, `${e.who} (${human(e.role)})`),
      el("td", {}, `${human(e.action)} ${human(e.what)}`),
      el("td", {}, e.allowed ? "allowed" : "refused" + (e.reason ? ` (${human(e.reason)})` : ""))))
      : [el("tr", {}, el("td", { colSpan: 4, class: "muted" }, "Nobody yet."))]));
  } catch (e) {
    tbody.replaceChildren(el("tr", {}, el("td", { colSpan: 4, class: "error" }, e.message)));
  }
}

async function searchProviders(ev) {
  if (ev) { ev.preventDefault(); bookPage = 0; }
  const q = new URLSearchParams({ page: bookPage, per_page: 10 });
  for (const [id, name] of [["#bk-specialty", "specialty"], ["#bk-near", "near"], ["#bk-radius", "radius_km"],
    ["#bk-insurance", "insurance"], ["#bk-language", "language"], ["#bk-rating", "min_rating"]]) {
    const v = $(id).value.trim();
    if (v && !(name === "radius_km" && !$("#bk-near").value.trim())) q.set(name, v);
  }
  $("#bk-status").textContent = "Searching…";
  try {
    const body = await (await api("/api/v1/providers/search?" + q)).json();
    $("#bk-ranking").textContent = "Ranked by " + body.ranking + ".";
    $("#bk-status").textContent = body.total ? `${body.total} practices; page ${body.page + 1} of ${Math.ceil(body.total / body.per_page)}.` : "No practice matches; widen the search.";
    $("#bk-results").replaceChildren(...body.hits.map((h) => {
      providerNames.set(h.id, h.name);
      const where = `${h.street}, ${h.postcode} ${h.city}` + (h.distance_km !== undefined ? ` · ${h.distance_km} km` : "");
      const stars = h.reviews ? `${h.rating_mean.toFixed(1)} ★ (${h.reviews} reviews)` : "no reviews yet";
      const next = h.earliest ? "next free: " + fmtDay(h.earliest) + ", " + fmtTime(h.earliest) : "no free opening in the next 90 days";
      const btn = el("button", { type: "button", class: "openings", disabled: !h.earliest }, "Show openings");
      btn.addEventListener("click", () => loadOpenings(h.id, h.name));
      return el("li", { class: "provider-card", dataset: { provider: h.id } },
        el("h3", {}, h.name), el("p", { class: "muted" }, `${human(h.specialty)} · ${where}`),
        el("p", {}, `${stars} · ${next}`), btn);
    }));
    const pager = [];
    if (body.page > 0) pager.push(el("button", { type: "button", class: "reject", onclick: () => { bookPage--; searchProviders(); } }, "← Previous"));
    if ((body.page + 1) * body.per_page < body.total) pager.push(el("button", { type: "button", class: "reject", onclick: () => { bookPage++; searchProviders(); } }, "Next →"));
    $("#bk-pager").replaceChildren(...pager);
  } catch (e) {
    $("#bk-status").textContent = e.message;
  }
}

async function loadOpenings(provider, name) {
  const box = $("#bk-openings");
  box.hidden = false;
  $("#bk-confirm").hidden = true;
  $("#bk-openings-title").textContent = `Openings at ${name}, next 14 days`;
  $("#bk-days").replaceChildren(el("p", {}, "Loading…"));
  try {
    const list = await (await api(`/api/v1/providers/${encodeURIComponent(provider)}/openings`)).json();
    const days = new Map();
    for (const o of list) {
      if (!days.has(dayKey(o.start))) days.set(dayKey(o.start), []);
      days.get(dayKey(o.start)).push(o);
    }
    const dayBox = (slots) => el("div", { class: "day" },
      el("h3", {}, fmtDay(slots[0].start)),
      el("div", { class: "slots" }, ...slots.map((o) => {
        const b = el("button", { type: "button", class: "slot reject", dataset: { start: o.start }, title: "listed on " + o.sources.join(", ") }, fmtTime(o.start));
        b.addEventListener("click", () => choose(provider, name, o));
        return b;
      })));
    // A few days at a time: a fortnight of 10-minute slots is more than anyone reads.
    const all = [...days.values()];
    let shown = 0;
    const more = el("button", { type: "button", class: "reject more" }, "Later days");
    const showMore = () => {
      const next = all.slice(shown, shown + 4).map(dayBox);
      shown += next.length;
      more.before(...next);
      more.hidden = shown >= all.length;
    };
    more.addEventListener("click", showMore);
    $("#bk-days").replaceChildren(...(all.length ? [more] : [el("p", {}, "No free opening in the next 14 days.")]));
    if (all.length) showMore();
    box.scrollIntoView();
  } catch (e) {
    $("#bk-days").replaceChildren(el("p", { class: "error" }, e.message));
  }
}

function choose(provider, name, o) {
  chosen = { provider, name, start: o.start };
  bookingKey = crypto.randomUUID();
  for (const b of document.querySelectorAll("#bk-days button.slot")) b.classList.toggle("chosen", b.dataset.start === o.start);
  $("#bk-chosen").textContent = `${fmtDay(o.start)}, ${fmtTime(o.start)}–${fmtTime(o.end)} at ${name} (${human(o.visit_type)})`;
  $("#bk-book-status").textContent = "";
  $("#bk-confirm").hidden = false;
  $("#bk-book").disabled = false;
}

async function book(ev) {
  ev.preventDefault();
  if (!chosen) return;
  const share = [...document.querySelectorAll("#bk-share input:checked")].map((i) => i.value);
  $("#bk-book").disabled = true;
  $("#bk-book-status").textContent = "Booking…";
  try {
    const resp = await api("/api/v1/appointments", { method: "POST", headers: { "Idempotency-Key": bookingKey },
      json: { provider: chosen.provider, start: chosen.start, share } });
    const a = await resp.json();
    $("#bk-book-status").textContent = `Booked: ${fmtDay(a.start)}, ${fmtTime(a.start)} at ${chosen.name}.` +
      (a.notifications.length ? " A confirmation and reminders are on their way by e-mail." : "") +
      (a.shared.length ? ` Shared: ${a.shared.map(human).join(", ")} until ${fmtDate(a.shared_until)}.` : "");
    $("#bk-book-status").className = "ok";
    const taken = document.querySelector("#bk-days button.chosen");
    if (taken) taken.remove();
    chosen = null;
    await Promise.all([loadMyAppointments(), loadConsents()]);
    await searchProviders();
  } catch (e) {
    $("#bk-book-status").className = "error";
    $("#bk-book-status").textContent = e.code === "slot_taken" ? "Someone was faster: this opening is taken. Pick another." : e.message;
    if (e.code === "slot_taken" && chosen) loadOpenings(chosen.provider, chosen.name);
  }
}

async function practiceName(id) {
  if (!providerNames.has(id)) {
    try { providerNames.set(id, (await (await api(`/api/v1/providers/${encodeURIComponent(id)}`)).json()).name); }
    catch (_) { providerNames.set(id, id); }
  }
  return providerNames.get(id);
}

async function loadMyAppointments() {
  const tbody = $("#my-appointments tbody");
  try {
    const list = await (await api("/api/v1/appointments/mine")).json();
    const upcoming = list.filter((a) => new Date(a.end) > new Date()).concat(list.filter((a) => new Date(a.end) <= new Date()).reverse().slice(0, 5));
    const rows = [];
    for (const a of upcoming) {
      const cancel = el("button", { type: "button", class: "reject cancel" }, "Cancel");
      cancel.hidden = !["booked", "confirmed"].includes(a.status) || new Date(a.start) < new Date();
      cancel.addEventListener("click", async () => {
        if (!confirm("Cancel this appointment?")) return;
        try { await api(`/api/v1/appointments/${a.id}/status`, { method: "POST", json: { status: "cancelled" } }); await loadMyAppointments(); }
        catch (e) { alert(e.message); }
      });
      rows.push(el("tr", { dataset: { id: a.id } }, el("td", {}, `${fmtDay(a.start)}, ${fmtTime(a.start)}`),
        el("td", {}, await practiceName(a.provider)), el("td", { class: "status" }, human(a.status)), el("td", {}, cancel)));
    }
    tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colSpan: 4, class: "muted" }, "None yet."))]));
  } catch (e) {
    tbody.replaceChildren(el("tr", {}, el("td", { colSpan: 4, class: "error" }, e.message)));
  }
}

// ---- calendar (doctors) -----------------------------------------------------------------
let weekOffset = 0;
const NEXT = { booked: [["confirmed", "Confirm"], ["cancelled", "Cancel"]], confirmed: [["checked_in", "Check in"], ["no_show", "No-show"], ["cancelled", "Cancel"]],
  checked_in: [["completed", "Complete"]] };

function weekStart(offset) {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  d.setDate(d.getDate() - ((d.getDay() + 6) % 7) + 7 * offset);
  return d;
}

async function loadCalendar() {
  show("calendar-view");
  const from = weekStart(weekOffset), to = weekStart(weekOffset + 1);
  $("#cal-range").textContent = `${fmtDate(from)} – ${fmtDate(new Date(to - 1))}`;
  $("#cal-status").textContent = "Loading…";
  try {
    const list = await (await api(`/api/v1/calendar?from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`)).json();
    $("#cal-status").textContent = `${list.length} appointments this week.`;
    const days = [];
    for (let i = 0; i < 7; i++) {
      const day = new Date(from); day.setDate(day.getDate() + i);
      const items = list.filter((a) => dayKey(a.start) === dayKey(day));
      days.push(el("section", { class: "day" }, el("h3", {}, fmtDay(day)),
        items.length ? el("ul", { class: "appts" }, ...items.map((a) => {
          const actions = (NEXT[a.status] || []).map(([status, text]) => {
            const b = el("button", { type: "button", class: status === "cancelled" || status === "no_show" ? "reject" : "", dataset: { status } }, text);
            b.addEventListener("click", async () => {
              try { await api(`/api/v1/appointments/${a.id}/status`, { method: "POST", json: { status } }); await loadCalendar(); }
              catch (e) { $("#cal-status").textContent = e.message; }
            });
            return b;
          });
          return el("li", { class: "appt status-" + a.status, dataset: { id: a.id, patient: a.patient } },
            el("span", { class: "when" }, `${fmtTime(a.start)}–${fmtTime(a.end)}`),
            el("a", { href: "#/patients/" + a.patient, class: "mono" }, a.patient),
            el("span", {}, human(a.visit_type)), el("span", { class: "status" }, human(a.status)),
            el("span", { class: "actions" }, ...actions));
        })) : el("p", { class: "muted" }, "—")));
    }
    $("#cal-days").replaceChildren(...days);
  } catch (e) {
    $("#cal-status").textContent = e.message;
  }
}

// ---- routing --------------------------------------------------------------------------
function route() {
  if (!session.token) { show("login-view"); $("#username").focus(); return; }
  if (session.user && session.user.role === "analyst") { loadKpis(); return; }
  if (session.user && session.user.role === "patient") { loadBooking(); return; }
  if (location.hash === "#/calendar") { loadCalendar(); return; }
  const m = location.hash.match(/^#\/patients\/([A-Za-z0-9]+)$/);
  if (m) loadPatient(m[1]); else loadPatients();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", signIn);
  $("#signout").addEventListener("click", () => { session.clear(); location.hash = ""; route(); });
  $("#search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(loadPatients, 250); });
  $("#kpi-form").addEventListener("submit", runKpi);
  $("#kpi-name").addEventListener("change", () => { kpiStrata(); runKpi(); });
  $("#kpi-csv").addEventListener("click", downloadCsv);
  $("#book-search").addEventListener("submit", searchProviders);
  $("#bk-confirm").addEventListener("submit", book);
  $("#cal-prev").addEventListener("click", () => { weekOffset--; loadCalendar(); });
  $("#cal-next").addEventListener("click", () => { weekOffset++; loadCalendar(); });
  $("#cal-today").addEventListener("click", () => { weekOffset = 0; loadCalendar(); });
  window.addEventListener("hashchange", route);
  route();
});
