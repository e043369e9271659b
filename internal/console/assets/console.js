// The console's views. It reads the HTTP API (/v1) with the caller's token
// like any client; it keeps the token for the tab only (sessionStorage),
// the tenant and a pinned verifier key across visits (localStorage).
import { verifyReceipt, verifyCheckpoint, verifyConsistency, parseKey, b64decode } from "./verify.js";

const API = "/v1";
const $ = (id) => document.getElementById(id);
const store = {
  get token() { return sessionStorage.getItem("logline.token") || ""; },
  set token(v) { v ? sessionStorage.setItem("logline.token", v) : sessionStorage.removeItem("logline.token"); },
  get tenant() { return localStorage.getItem("logline.tenant") || ""; },
  set tenant(v) { localStorage.setItem("logline.tenant", v); },
  get key() { return localStorage.getItem("logline.key") || ""; },
  set key(v) { v ? localStorage.setItem("logline.key", v) : localStorage.removeItem("logline.key"); },
};

// The page's own state, also read by the browser tests.
const state = {
  tenant: "", view: "tenant", dev: false, streams: [], timer: 0,
  live: [], arrivals: [], derived: [], thingTrajectories: new Map(),
  serverKey: "",
};
window.logline = { state, verifyReceipt, verifyCheckpoint };

class APIError extends Error {
  constructor(status, problem) {
    const p = problem || {};
    super(p.detail || p.title || `HTTP ${status}`);
    this.status = status;
    this.problem = p;
  }
  get text() {
    const id = this.problem.request_id ? ` (request ${this.problem.request_id})` : "";
    return `${this.message}${id}`;
  }
}

function headers(extra) {
  const h = new Headers(extra || {});
  if (store.token) h.set("Authorization", "Bearer " + store.token);
  return h;
}

async function api(path, opts = {}) {
  const res = await fetch(API + path, { ...opts, headers: headers(opts.headers) });
  if (!res.ok) {
    let problem = null;
    if ((res.headers.get("Content-Type") || "").includes("json")) problem = await res.json().catch(() => null);
    throw new APIError(res.status, problem);
  }
  return res;
}
const getJSON = async (path) => (await api(path)).json();
const getText = async (path) => (await api(path)).text();
const seg = encodeURIComponent;

function say(msg, bad) {
  const el = $("status");
  el.textContent = msg;
  el.className = bad ? "bad" : "";
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k ?? "")));
  return e;
}
const fmt = (n) => (n == null ? "–" : Number(n).toLocaleString("en"));

// ---- sign-in ---------------------------------------------------------------

function b64url(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
const redirectURI = () => location.origin + "/console/";

async function signIn() {
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const st = b64url(crypto.getRandomValues(new Uint8Array(16)));
  const challenge = b64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
  sessionStorage.setItem("logline.pkce", JSON.stringify({ verifier, state: st }));
  const q = new URLSearchParams({ redirect_uri: redirectURI(), code_challenge: challenge, code_challenge_method: "S256", state: st });
  if ($("tenant-input").value) q.set("tenant", $("tenant-input").value);
  location.assign(`${API}/auth/login?${q}`);
}

// finishSignIn exchanges the one-time code the login returned with for a
// token, with the PKCE verifier this tab kept.
async function finishSignIn() {
  const q = new URLSearchParams(location.search);
  if (!q.has("code")) return;
  history.replaceState(null, "", "/console/");
  const pkce = JSON.parse(sessionStorage.getItem("logline.pkce") || "null");
  sessionStorage.removeItem("logline.pkce");
  if (!pkce || pkce.state !== q.get("state")) {
    say("The sign-in did not start in this tab; sign in again.", true);
    return;
  }
  const body = new URLSearchParams({ grant_type: "authorization_code", code: q.get("code"), code_verifier: pkce.verifier, redirect_uri: redirectURI() });
  const res = await fetch(`${API}/auth/token`, { method: "POST", body });
  const t = await res.json().catch(() => ({}));
  if (!res.ok) {
    say(`Sign-in failed: ${t.detail || res.status}`, true);
    return;
  }
  store.token = t.access_token;
  if (t.tenant && !store.tenant) store.tenant = t.tenant;
  $("who").textContent = `${t.sub} · ${t.tenant} · ${(t.roles || []).join(", ")}`;
}

function showLogin(why) {
  stopStreams();
  $("login").hidden = false;
  $("tenant-view").hidden = true;
  $("operator-view").hidden = true;
  say(why || "Sign in to continue.", true);
}

// ---- streams ---------------------------------------------------------------

function stopStreams() {
  for (const c of state.streams) c.abort();
  state.streams = [];
  clearInterval(state.timer);
}

// follow reads an NDJSON stream from a fetch body, line by line, until the
// view changes; a line that does not parse ends it.
async function follow(path, onLine) {
  const ctl = new AbortController();
  state.streams.push(ctl);
  try {
    const res = await api(path, { signal: ctl.signal });
    const rd = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await rd.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line) onLine(JSON.parse(line));
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") say(`Stream ${path.split("?")[0]} ended: ${e.text || e.message}`, true);
  }
}

// ---- tenant view -----------------------------------------------------------

async function openTenant(tenant) {
  stopStreams();
  state.tenant = tenant;
  store.tenant = tenant;
  state.live = [];
  state.arrivals = [];
  state.derived = [];
  state.thingTrajectories = new Map();
  $("live").tBodies[0].replaceChildren();
  $("derived").replaceChildren();
  $("thing").replaceChildren();
  $("trajectory").replaceChildren();
  $("receipt-result").textContent = "";
  $("checkpoint-result").textContent = "";
  let ov;
  try {
    ov = await getJSON(`/overview/${seg(tenant)}`);
  } catch (e) {
    if (e.status === 401) return showLogin(e.text);
    say(`Cannot open tenant ${tenant}: ${e.text || e.message}`, true);
    return;
  }
  $("login").hidden = true;
  $("tenant-view").hidden = false;
  $("operator-view").hidden = true;
  say(`Tenant ${tenant}`);
  renderOverview(ov);
  await loadKey();
  loadCheckpoint();
  loadDeliveries();
  const from = Math.max(0, ov.ledger_next - 500);
  follow(`/ledger/stream?tenant=${seg(tenant)}&cursor=${from}&follow=true`, (rec) => addSpan(rec, rec.seq >= ov.ledger_next));
  const dfrom = Math.max(0, ov.derivation.derived_events - 500);
  follow(`/derived/stream?tenant=${seg(tenant)}&cursor=${dfrom}&follow=true`, addDerived);
  state.timer = setInterval(refresh, 2000);
}

async function refresh() {
  if (state.view !== "tenant" || !state.tenant) return;
  const now = Date.now();
  state.arrivals = state.arrivals.filter((t) => now - t < 10000);
  $("rate").textContent = (state.arrivals.length / 10).toFixed(1);
  try {
    renderOverview(await getJSON(`/overview/${seg(state.tenant)}`));
  } catch (e) {
    if (e.status === 401) showLogin(e.text);
  }
}

function renderOverview(ov) {
  $("spans").textContent = fmt(ov.ingest.spans);
  $("accepted").textContent = fmt(ov.ingest.accepted_since_start);
  $("rejected").textContent = fmt(ov.ingest.rejected_since_start);
  $("quota").textContent = ov.quota ? `${fmt(ov.quota.ingest_per_second)}/s, burst ${fmt(ov.quota.burst)}` : "not enforced (--dev)";
  const d = ov.derivation;
  $("backpressure").textContent = `${d.backpressure}, ${fmt(d.backlog)} behind` + (d.error ? ` (${d.error})` : "");
  $("backpressure").className = d.backpressure === "ok" ? "" : "bad";
  renderMeter(ov.meter, ov.candidates);
}

function renderMeter(m, candidates) {
  const th = m.threshold;
  $("meter-summary").textContent =
    `${fmt(m.n)} scores in the window; threshold at ${m.percentile_target}: ${th == null ? "none yet" : th}; ` +
    `min_score ${m.min_score}; warm-up ${m.warmup}` + (m.diamond_enabled ? "" : "; diamond flagging is off");
  const W = 1010, H = 160, pad = 20;
  const max = Math.max(1, ...m.scores);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H + pad}`);
  m.scores.forEach((c, s) => {
    if (!c) return;
    const h = Math.max(1, Math.round((c / max) * H));
    const r = document.createElementNS(ns, "rect");
    r.setAttribute("class", "bar");
    r.setAttribute("x", s * 10);
    r.setAttribute("y", H - h);
    r.setAttribute("width", 8);
    r.setAttribute("height", h);
    r.dataset.score = s;
    r.dataset.count = c;
    const t = document.createElementNS(ns, "title");
    t.textContent = `score ${s}: ${c}`;
    r.append(t);
    svg.append(r);
  });
  if (th != null) {
    const l = document.createElementNS(ns, "line");
    l.setAttribute("class", "threshold");
    l.setAttribute("x1", th * 10 + 4);
    l.setAttribute("x2", th * 10 + 4);
    l.setAttribute("y1", 0);
    l.setAttribute("y2", H);
    l.dataset.threshold = th;
    svg.append(l);
  }
  for (const s of [0, 25, 50, 75, 100]) {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", Math.min(s * 10, W - 24));
    t.setAttribute("y", H + 16);
    t.textContent = s;
    svg.append(t);
  }
  $("histogram").replaceChildren(svg);
  $("candidates").replaceChildren(
    ...(candidates.length
      ? candidates.map((c) => el("li", {}, trajLink(c.trajectory_id), ` score ${c.score} ≥ ${c.threshold} · ${c.ts}`))
      : [el("li", {}, "none yet")]),
  );
}

function trajLink(id) {
  return el("button", { type: "button", class: "link", onclick: () => openTrajectory(id) }, id);
}

function addSpan(rec, arrived) {
  const s = rec.span;
  if (!s) return;
  if (arrived) state.arrivals.push(Date.now());
  state.live.unshift(rec);
  const tb = $("live").tBodies[0];
  const verify = el("button", { type: "button", onclick: () => checkReceipt(s.id), "aria-label": `Verify the receipt of span ${s.id}` }, "verify");
  const thing = el("button", { type: "button", class: "link", onclick: () => openThing(s.this) }, s.this);
  tb.prepend(el("tr", { "data-seq": rec.seq, "data-id": s.id }, el("td", { class: "num" }, rec.seq), el("td", {}, s.when), el("td", {}, s.who), el("td", {}, s.did), el("td", {}, thing), el("td", {}, s.status), el("td", {}, verify)));
  while (tb.rows.length > 20) tb.deleteRow(-1);
  if (state.live.length > 20) state.live.pop();
}

function addDerived(ev) {
  state.derived.unshift(ev);
  if (ev.type === "trajectory_edge" && ev.this) state.thingTrajectories.set(ev.this, ev.trajectory_id);
  let text;
  switch (ev.type) {
    case "trajectory_edge": text = ` ← ${ev.this} #${ev.position} (${ev.src_span_id})`; break;
    case "trajectory_closed": text = ` closed (${ev.reason})`; break;
    case "trajectory_quality": text = ` scored ${ev.score}`; break;
    case "diamond_candidate": text = ` ◆ diamond candidate, ${ev.score} ≥ ${ev.threshold}`; break;
    default: text = ` ${ev.type}`;
  }
  const list = $("derived");
  list.prepend(el("li", {}, ev.trajectory_id ? trajLink(ev.trajectory_id) : "", text));
  while (list.children.length > 100) list.lastChild.remove();
  if (state.derived.length > 500) state.derived.pop();
}

async function openThing(thisID) {
  $("thing-input").value = thisID;
  const ol = $("thing");
  ol.replaceChildren(el("li", {}, "loading…"));
  try {
    const out = await getJSON(`/things/${seg(state.tenant)}/${seg(thisID)}?limit=200`);
    const items = out.spans.map((r) => el("li", {}, `${r.span.when} · ${r.span.who} ${r.span.did} (${r.span.status}) · seq ${r.seq} `,
      el("button", { type: "button", onclick: () => checkReceipt(r.span.id), "aria-label": `Verify the receipt of span ${r.span.id}` }, "verify")));
    ol.replaceChildren(...(items.length ? items : [el("li", {}, "no spans")]));
    const tid = state.thingTrajectories.get(thisID);
    if (tid) ol.append(el("li", {}, "trajectory: ", trajLink(tid)));
  } catch (e) {
    ol.replaceChildren(el("li", { class: "bad" }, e.text || e.message));
  }
}

async function openTrajectory(id) {
  $("traj-input").value = id;
  const box = $("trajectory");
  box.replaceChildren("loading…");
  try {
    const t = await getJSON(`/trajectories/${seg(state.tenant)}/${seg(id)}`);
    const parts = [el("p", {}, `${t.trajectory_id} · ${t.this || ""} · ${t.status} · ${t.spans.length} spans`)];
    if (t.quality) {
      const c = t.quality.components || {};
      parts.push(el("dl", { class: "figures" },
        el("div", {}, el("dt", {}, "score"), el("dd", { id: "traj-score" }, t.quality.score)),
        ...Object.keys(c).sort().map((k) => el("div", {}, el("dt", {}, k), el("dd", {}, c[k])))));
    }
    if (t.candidate) parts.push(el("p", { class: "ok" }, `◆ diamond candidate (threshold ${t.candidate.threshold})`));
    parts.push(el("ol", { class: "timeline" }, ...t.spans.map((r) => el("li", { "data-seq": r.seq }, `${r.span.when} · ${r.span.who} ${r.span.did} (${r.span.status}) · seq ${r.seq} `,
      el("button", { type: "button", onclick: () => checkReceipt(r.span.id), "aria-label": `Verify the receipt of span ${r.span.id}` }, "verify")))));
    box.replaceChildren(...parts);
  } catch (e) {
    box.replaceChildren(el("p", { class: "bad" }, e.text || e.message));
  }
}

async function loadDeliveries() {
  const tb = $("deliveries").tBodies[0];
  try {
    const out = await getJSON(`/webhooks/${seg(state.tenant)}/deliveries`);
    tb.replaceChildren(...out.deliveries.slice(0, 50).map((d) =>
      el("tr", {}, el("td", {}, d.id), el("td", { class: d.state === "dead" ? "bad" : "" }, d.state), el("td", { class: "num" }, d.attempts), el("td", {}, d.url || d.call))));
    $("deliveries-note").textContent = out.deliveries.length ? "" : "No deliveries: the bundle's routers have sent none for this tenant.";
  } catch (e) {
    $("deliveries-note").textContent = e.status === 404 ? "Webhooks are not running on this server." : e.text || e.message;
  }
}

// ---- verification ----------------------------------------------------------

async function loadKey() {
  try {
    state.serverKey = (await getText("/ledger/key")).trim();
  } catch (e) {
    state.serverKey = "";
  }
  $("key-input").value = store.key || state.serverKey;
}

function currentKey() {
  return $("key-input").value.trim();
}

async function loadCheckpoint() {
  try {
    $("checkpoint").textContent = await getText("/ledger/checkpoint");
  } catch (e) {
    $("checkpoint").textContent = e.text || e.message;
  }
}

function result(id, ok, text) {
  const p = $(id);
  p.className = ok ? "ok" : "bad";
  p.textContent = text;
  p.dataset.ok = ok ? "true" : "false";
}

async function checkCheckpoint() {
  await loadCheckpoint();
  const note = $("checkpoint").textContent;
  try {
    const k = await parseKey(currentKey());
    const c = await verifyCheckpoint(k, note);
    let msg = `✓ checkpoint of ${fmt(c.size)} records signed by ${k.origin}+${k.kid}`;
    const seenKey = `logline.seen.${k.origin}`;
    const prev = JSON.parse(localStorage.getItem(seenKey) || "null");
    if (prev && prev.size <= c.size && prev.size > 0) {
      const proof = await getJSON(`/ledger/proof?from=${prev.size}&size=${c.size}`);
      await verifyConsistency(prev.size, c.size, b64decode(prev.root), b64decode(c.root), (proof.path || []).map(b64decode));
      msg += `; it extends the checkpoint of ${fmt(prev.size)} you verified before`;
    }
    localStorage.setItem(seenKey, JSON.stringify({ size: c.size, root: c.root }));
    result("checkpoint-result", true, msg);
  } catch (e) {
    result("checkpoint-result", false, `✗ ${e.text || e.message}`);
  }
}

// checkReceipt fetches a span as the ledger holds it and its receipt, and
// checks them here with the verifier key.
async function checkReceipt(id) {
  const t = state.tenant;
  try {
    const [rec, receipt] = await Promise.all([getJSON(`/spans/${seg(t)}/${seg(id)}`), getJSON(`/receipts/${seg(t)}/${seg(id)}`)]);
    const v = await verifyReceipt(currentKey(), receipt, rec.span);
    result("receipt-result", true, `✓ receipt of ${id} verified in this browser: seq ${v.seq}, batch ${v.batch}, signed by ${v.origin}+${v.kid} at ${v.ts}`);
  } catch (e) {
    result("receipt-result", false, `✗ receipt of ${id}: ${e.text || e.message}`);
  }
}

// ---- operator view ---------------------------------------------------------

async function openOperator() {
  stopStreams();
  let ov;
  try {
    ov = await getJSON("/overview");
  } catch (e) {
    if (e.status === 401) return showLogin(e.text);
    say(`The operator view needs metrics.read in the operator tenant: ${e.text || e.message}`, true);
    return;
  }
  $("login").hidden = true;
  $("tenant-view").hidden = true;
  $("operator-view").hidden = false;
  say("Operator");
  $("op-next").textContent = fmt(ov.ledger_next);
  $("op-ckpt").textContent = fmt(ov.checkpoint_size);
  $("op-lag").textContent = `${fmt(ov.derivation.backlog)} records`;
  $("op-bp").textContent = ov.derivation.backpressure + (ov.derivation.error ? ` (${ov.derivation.error})` : "");
  const names = Object.keys(ov.tenants).sort();
  const rows = names.map((n) => {
    const t = ov.tenants[n];
    const accounts = el("td", {}, ov.dev ? "–" : "…");
    const open = el("button", { type: "button", class: "link", onclick: () => { showView("tenant"); $("tenant-input").value = n; openTenant(n); } }, n);
    if (!ov.dev) {
      getJSON(`/admin/tenants/${seg(n)}/service-accounts`)
        .then((a) => { accounts.textContent = a.service_accounts.filter((x) => !x.revoked).map((x) => `${x.id} (${x.role})`).join(", ") || "none"; })
        .catch((e) => { accounts.textContent = e.text || e.message; });
    }
    return el("tr", {}, el("td", {}, open), ...[t.spans, t.accepted_since_start, t.rejected_since_start, t.derived_events, t.open_trajectories, t.candidates].map((v) => el("td", { class: "num" }, fmt(v))), accounts);
  });
  $("tenants").tBodies[0].replaceChildren(...rows);
  const kb = $("keys").tBodies[0];
  if (ov.dev) {
    kb.replaceChildren();
    $("keys-note").textContent = "A --dev server issues no tokens and has no signing keys.";
  } else {
    try {
      const k = await getJSON("/admin/keys");
      kb.replaceChildren(...k.keys.map((x) => el("tr", {}, el("td", {}, x.kid), el("td", {}, x.state), el("td", {}, x.activated || x.created), el("td", {}, x.verify_until || ""))));
      $("keys-note").textContent = "";
    } catch (e) {
      $("keys-note").textContent = e.text || e.message;
    }
  }
}

function showView(v) {
  state.view = v;
  $("nav-tenant").setAttribute("aria-pressed", String(v === "tenant"));
  $("nav-operator").setAttribute("aria-pressed", String(v === "operator"));
}

// ---- start -----------------------------------------------------------------

async function start() {
  $("tenant-form").addEventListener("submit", (e) => {
    e.preventDefault();
    showView("tenant");
    openTenant($("tenant-input").value.trim());
  });
  $("nav-tenant").addEventListener("click", () => { showView("tenant"); if ($("tenant-input").value) openTenant($("tenant-input").value.trim()); });
  $("nav-operator").addEventListener("click", () => { showView("operator"); openOperator(); });
  $("sign-in").addEventListener("click", signIn);
  $("sign-out").addEventListener("click", () => { store.token = ""; showLogin("Signed out."); });
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    store.token = $("token-input").value.trim();
    $("token-input").value = "";
    go();
  });
  $("pin-key").addEventListener("click", () => {
    store.key = currentKey() === state.serverKey ? "" : currentKey();
    result("checkpoint-result", true, store.key ? "Key pinned: checks use it, whatever this server says." : "Using the server's key.");
  });
  $("verify-checkpoint").addEventListener("click", checkCheckpoint);
  $("thing-form").addEventListener("submit", (e) => { e.preventDefault(); openThing($("thing-input").value.trim()); });
  $("traj-form").addEventListener("submit", (e) => { e.preventDefault(); openTrajectory($("traj-input").value.trim()); });
  await finishSignIn();
  $("tenant-input").value = store.tenant;
  go();
}

function go() {
  $("sign-out").hidden = !store.token;
  const t = $("tenant-input").value.trim();
  if (state.view === "operator") return openOperator();
  if (t) return openTenant(t);
  $("login").hidden = true;
  say("Name a tenant to open it.");
}

start();
