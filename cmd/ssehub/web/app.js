// ssehub demo page: a real EventSource against this hub, plus a publish
// form. Plain JavaScript so that the binary serves it with no build step.
"use strict";

const $ = (sel) => document.querySelector(sel);

// Event types listened to from the start; a type published from the form
// is added, since EventSource has no catch-all for named events.
const KNOWN_TYPES = ["connected", "heartbeat", "resync", "session_ended", "notification", "badge_update", "new_item", "message"];

const SAMPLE_DATA = {
  notification: { type: "follow", title: "New follower!", message: "Ada Lovelace started following you." },
  badge_update: { count: 3 },
  new_item: { item_type: "post", item_id: "42", item: { title: "Hello, live world" } },
  message: { text: "Hi there 👋" },
  "": { anything: "goes" },
};

const state = {
  cfg: null,
  es: null,
  user: "",
  tenant: "",
  topics: new Set(), // the topics joined, asked for with ?topic= on every (re)open
  token: "",       // pasted token (debugger mode)
  // ttl is the lifetime the page asks of dev tokens: its own ?ttl=, a
  // dev-only knob (e.g. /?ttl=5s) to watch tokens expire; "" for the hub's.
  ttl: new URLSearchParams(location.search).get("ttl") || "",
  refreshing: false, // a new token was fetched and its stream has not opened yet
  openNote: "",    // said once the current EventSource opens
  publishKey: "",
  clientId: "",
  lastId: "",
  types: new Set(KNOWN_TYPES), // every type to listen to
  listened: new Set(),         // the types the current EventSource listens to
  opened: false,   // whether the current EventSource ever opened
  recoverDelay: 1000,
  recoverTimer: 0,
  count: 0,
};

// ---- connection state ------------------------------------------------

function setState(name, text) {
  const pill = $("#state");
  pill.dataset.state = name;
  $("#state-text").textContent = text;
}

function setFact(id, value) {
  $(id).textContent = value || "—";
  $(id).title = value || "";
}

// connect opens a new EventSource. withCredentials sends the sse_token
// cookie (dev mode); a pasted token goes in ?access_token=, since an
// EventSource cannot set headers. resumeFrom resumes a new EventSource
// where the last one stopped (its own reconnects send Last-Event-ID); the
// topics joined since start where they are now.
function connect(resumeFrom) {
  if (state.es) state.es.close();
  clearTimeout(state.recoverTimer);
  const params = new URLSearchParams();
  if (!state.cfg.dev) params.set("access_token", state.token);
  if (resumeFrom) params.set("lastEventId", resumeFrom);
  for (const topic of state.topics) params.append("topic", topic);
  const qs = params.toString();
  const url = state.cfg.prefix + "/stream" + (qs ? "?" + qs : "");
  const es = new EventSource(url, { withCredentials: true });
  state.es = es;
  state.opened = false;
  state.listened = new Set();
  setState("connecting", "Connecting");
  es.onopen = () => {
    state.opened = true;
    state.refreshing = false;
    state.recoverDelay = 1000;
    setState("open", "Live");
    if (state.openNote) systemEntry(state.openNote);
    state.openNote = "";
  };
  es.onerror = () => {
    if (es !== state.es) return;
    if (es.readyState === EventSource.CONNECTING) {
      // The browser reconnects by itself, with Last-Event-ID.
      setState("reconnecting", "Reconnecting");
      return;
    }
    // CLOSED: the hub refused the stream for good.
    setState("closed", "Closed");
    onRefused(es, url);
  };
  state.types.forEach(listen);
}

// onRefused says why the hub refused es, the stream at url, and recovers. An
// EventSource that gets any status but 200 fires a bare error and never
// retries, so the page asks the same URL again with fetch, which can read
// the status and the JSON body: 400 or 403 for topics it may not follow
// (the reason is shown, those topics left, and the stream reopened with
// the rest), 401 credentials_expired for a token that was good and has
// expired (a new one, and the stream resumes: see onSessionEnded), 401
// unauthorized for a token the hub refuses (e.g. a dev hub restarted
// with a new secret, or a bad pasted token).
async function onRefused(es, url) {
  const { status, body } = await refusal(url);
  if (es !== state.es) return; // the page has opened another meanwhile
  if (status === 401 && body.error === "credentials_expired") {
    if (!state.cfg.dev) {
      systemEntry("The token expired: paste a new one, and Connect resumes from the last event.");
      return;
    }
    // A token just fetched that is refused as expired already would be
    // fetched again at once, for ever: back off instead.
    if (state.refreshing) scheduleRecover();
    else refresh(state.lastId);
    return;
  }
  if (status === 400 || status === 403) {
    const msg = body.message || "the hub answered " + status;
    showTopicError(msg);
    systemEntry("Stream refused (" + status + "): " + msg);
    // The body names the refused topics; too many names none: leave the
    // last one joined.
    const refused = body.topics && body.topics.length ? body.topics : [...state.topics].slice(-1);
    const left = refused.filter((t) => state.topics.delete(t));
    renderTopics();
    if (left.includes($("#to-topic").value)) $("#to-topic").value = [...state.topics].pop() || "";
    // A refusal for topics the page did not join (the token's own) would
    // come back at every reopen: stay closed.
    if (left.length > 0) connect(state.lastId);
    return;
  }
  if (state.cfg.dev) {
    systemEntry("Stream refused; getting a new token and resuming…");
    scheduleRecover();
  } else {
    systemEntry("Stream refused (" + (status || "no answer") + "): " + (body.message || "the token is invalid or expired") + ". Paste a new one.");
  }
}

// refusal fetches a stream URL as the EventSource did and returns the
// status and JSON body of the refusal; status 0 when the hub does not
// answer. An answer that is a stream after all is cut at once.
async function refusal(url) {
  const ctl = new AbortController();
  try {
    const res = await fetch(url, { credentials: "include", cache: "no-store", signal: ctl.signal });
    if (!(res.headers.get("Content-Type") || "").startsWith("application/json")) {
      ctl.abort();
      return { status: res.status, body: {} };
    }
    return { status: res.status, body: await res.json() };
  } catch (_) {
    return { status: 0, body: {} };
  }
}

// ---- topics ------------------------------------------------------------

// join adds the topic typed in and reopens the stream with it, from where
// the stream is.
function join(ev) {
  ev.preventDefault();
  const topic = $("#topic").value.trim();
  if (!topic) return;
  $("#topic").value = "";
  $("#to-topic").value = topic;
  $("#topic-error").hidden = true;
  if (state.topics.has(topic)) return;
  state.topics.add(topic);
  renderTopics();
  systemEntry("Joining topic " + topic + ": reopening the stream");
  if (state.es) connect(state.lastId);
}

function leave(topic) {
  state.topics.delete(topic);
  renderTopics();
  if (state.es) connect(state.lastId);
}

function renderTopics() {
  const items = [...state.topics].map((topic) => {
    const li = document.createElement("li");
    li.dataset.topic = topic;
    const name = document.createElement("span");
    name.textContent = topic;
    const x = document.createElement("button");
    x.type = "button";
    x.textContent = "×";
    x.title = "Leave " + topic;
    x.setAttribute("aria-label", "Leave " + topic);
    x.addEventListener("click", () => leave(topic));
    li.append(name, x);
    return li;
  });
  $("#topics").replaceChildren(...items);
}

function showTopicError(msg) {
  const el = $("#topic-error");
  el.textContent = msg;
  el.hidden = false;
}

// showGrants shows what a token lets the stream follow: its tenant, the
// topics it follows by default and those it may join.
function showGrants(tenant, topics, allowed) {
  const list = (v) => (Array.isArray(v) ? v.map(String) : []);
  topics = list(topics);
  allowed = list(allowed);
  state.tenant = typeof tenant === "string" ? tenant : "";
  setFact("#fact-tenant", state.tenant);
  const parts = [];
  if (topics.length) parts.push("Followed by the token: " + topics.join(", ") + ".");
  parts.push(allowed.length ? "The token allows " + allowed.join(", ") + "; any other topic is refused." : "The token allows no other topic.");
  $("#grants").textContent = parts.join(" ");
}

// listen adds a listener for one event type on the current EventSource.
function listen(type) {
  state.types.add(type);
  if (!state.es || state.listened.has(type)) return;
  state.listened.add(type);
  state.es.addEventListener(type, (ev) => onEvent(type, ev));
}

// onSessionEnded handles the hub's last event on es, session_ended: the
// token of the stream expired (or its session was revoked), and data says
// why and where the stream stands. Left open, the EventSource would
// reconnect by itself with the same token and be refused for good; so it
// is closed, and in dev mode the page gets a new token and opens a new
// EventSource from data.last_event_id (and its topics), missing nothing
// and getting nothing twice. A pasted token the page cannot renew: it asks
// for a new one, and Connect resumes from there (see start). A revoked
// session stays closed: its user has to sign in again.
function onSessionEnded(es, data) {
  if (es !== state.es) return;
  es.close();
  state.es = null;
  const from = (data && data.last_event_id) || state.lastId;
  state.lastId = from;
  setFact("#fact-last", from);
  const reason = (data && data.reason) || "ended";
  if (reason === "expired" && state.cfg.dev) {
    setState("reconnecting", "Refreshing token");
    refresh(from);
    return;
  }
  setState("closed", reason === "expired" ? "Token expired" : "Session " + reason);
  if (reason === "expired") {
    systemEntry("The token expired: paste a new one, and Connect resumes from the last event.");
  } else {
    systemEntry("Session " + reason + ": sign in again.");
  }
}

// refresh gets a new token (dev mode) and opens a new EventSource from
// resumeFrom, saying so once it is open; while no token can be had it
// backs off as scheduleRecover does. Anything that opened another stream
// meanwhile (a user switch) wins.
async function refresh(resumeFrom) {
  clearTimeout(state.recoverTimer);
  const current = state.es;
  state.refreshing = true;
  try {
    await mintToken(state.user);
  } catch (err) {
    systemEntry("Could not get a new token: " + err.message);
    scheduleRecover();
    return;
  }
  if (state.es !== current) return;
  state.openNote = "Token refreshed, resumed";
  connect(resumeFrom);
}

// scheduleRecover gets a new token (dev mode) and opens a new EventSource
// from the last id, backing off while it keeps failing.
function scheduleRecover() {
  clearTimeout(state.recoverTimer);
  const delay = state.recoverDelay;
  state.recoverDelay = Math.min(state.recoverDelay * 2, 30000);
  state.recoverTimer = setTimeout(async () => {
    try {
      await mintToken(state.user);
      connect(state.lastId);
    } catch (err) {
      systemEntry("Could not get a token: " + err.message);
      scheduleRecover();
    }
  }, delay);
}

// ---- events ------------------------------------------------------------

function onEvent(type, ev) {
  if (ev.lastEventId) {
    state.lastId = ev.lastEventId;
    setFact("#fact-last", state.lastId);
  }
  let data = ev.data;
  try { data = JSON.parse(ev.data); } catch (_) { /* shown as text */ }
  switch (type) {
    case "connected":
      state.clientId = data && data.client_id;
      setFact("#fact-client", state.clientId);
      break;
    case "notification":
      toast(data);
      break;
    case "badge_update":
      setBadge(data && data.count);
      break;
  }
  addEntry(type, ev.lastEventId, data);
  if (type === "session_ended") onSessionEnded(ev.target, data);
}

function addEntry(type, id, data) {
  const li = document.createElement("li");
  li.dataset.type = type;
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString([], { hour12: false });
  const chip = document.createElement("span");
  chip.className = "type";
  chip.textContent = type;
  chip.title = type;
  const body = document.createElement("div");
  body.className = "body";
  if (id) {
    const idEl = document.createElement("div");
    idEl.className = "id";
    idEl.textContent = "id " + id;
    body.append(idEl);
  }
  const pre = document.createElement("pre");
  pre.textContent = typeof data === "string" ? data : JSON.stringify(data);
  body.append(pre);
  li.append(time, chip, body);
  if (type === "heartbeat" && !$("#show-heartbeats").checked) li.hidden = true;
  const log = $("#log");
  log.prepend(li);
  while (log.children.length > 300) log.lastElementChild.remove();
  if (type !== "heartbeat") {
    state.count++;
    $("#count").textContent = state.count;
    $("#empty").hidden = true;
  }
}

function systemEntry(text) {
  addEntry("system", "", text);
}

function toast(data) {
  const t = document.createElement("div");
  t.className = "toast";
  t.setAttribute("role", "status");
  const title = document.createElement("div");
  title.className = "title";
  title.textContent = (data && data.title) || "Notification";
  const msg = document.createElement("div");
  msg.className = "msg";
  msg.textContent = (data && data.message) || "";
  t.append(title, msg);
  const box = $("#toasts");
  box.append(t); // the stack sits at the bottom: newest last, nearest the corner
  while (box.children.length > 4) box.firstElementChild.remove();
  setTimeout(() => {
    t.classList.add("leaving");
    setTimeout(() => t.remove(), 400);
  }, 7000);
}

function setBadge(count) {
  const n = Number(count) || 0;
  const b = $("#badge");
  b.dataset.count = String(n);
  b.textContent = n > 99 ? "99+" : String(n);
  b.hidden = n <= 0;
}

// ---- tokens --------------------------------------------------------------

// mintToken asks a dev-mode hub for a token for user ("" for a new user),
// of the lifetime state.ttl if set; the hub sets it as the sse_token
// cookie.
async function mintToken(user) {
  const query = state.ttl ? "?ttl=" + encodeURIComponent(state.ttl) : "";
  const res = await fetch("/demo/token" + query, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user }),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(body.message || res.statusText);
  state.user = body.user;
  state.publishKey = body.publish_key;
  $("#user").value = body.user;
  setFact("#fact-user", body.user);
  showGrants(body.tenant, [], body.allowed_topics);
  try { localStorage.setItem("ssehub.demo.user", body.user); } catch (_) { /* private mode */ }
}

// jwtClaims reads the claims of a token without verifying them: only to
// show whom the page subscribes as; the hub verifies.
function jwtClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part)) || {};
  } catch (_) {
    return {};
  }
}

// ---- publish -------------------------------------------------------------

function currentType() {
  const sel = $("#type").value;
  return sel || $("#custom-type").value.trim();
}

function onTypeChange() {
  const custom = $("#type").value === "";
  $("#custom-type").hidden = !custom;
  $("#data").value = JSON.stringify(SAMPLE_DATA[$("#type").value] || {}, null, 2);
}

function onTargetChange() {
  const to = document.querySelector('input[name="to"]:checked').value;
  $("#to-user").hidden = to !== "user";
  $("#to-topic").hidden = to !== "topic";
}

async function publish(ev) {
  ev.preventDefault();
  const out = $("#publish-result");
  out.className = "result";
  out.textContent = "";
  const type = currentType();
  let data;
  try {
    data = JSON.parse($("#data").value || "null");
  } catch (err) {
    return fail("Data is not JSON: " + err.message);
  }
  const body = { type, data };
  const to = document.querySelector('input[name="to"]:checked').value;
  // Everyone is only ever asked for: the hub refuses a body that names nobody.
  if (to === "all") body.all = true;
  if (to === "me") body.users = [state.user];
  if (to === "user") body.users = [$("#to-user").value.trim()];
  if (to === "client") body.clients = [state.clientId];
  if (to === "tenant") {
    if (!state.tenant) return fail("This stream has no tenant: its token names none.");
    body.tenant = state.tenant;
  }
  if (to === "topic") body.topics = [$("#to-topic").value.trim()];
  const key = state.cfg.dev ? state.publishKey : $("#key").value.trim();
  if (!key) return fail("A publish key is needed to publish.");
  listen(type);
  $("#publish-btn").disabled = true;
  try {
    const res = await fetch(state.cfg.prefix + "/publish", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: "Bearer " + key },
      body: JSON.stringify(body),
    });
    const answer = await res.json().catch(() => ({}));
    if (!res.ok) return fail(res.status + ": " + (answer.message || res.statusText));
    out.className = "result ok";
    out.textContent = "Published " + answer.id;
  } catch (err) {
    fail(err.message);
  } finally {
    $("#publish-btn").disabled = false;
  }

  function fail(msg) {
    out.className = "result err";
    out.textContent = msg;
  }
}

// ---- start -----------------------------------------------------------------

async function start() {
  $("#publish").addEventListener("submit", publish);
  $("#join-form").addEventListener("submit", join);
  $("#type").addEventListener("change", onTypeChange);
  document.querySelectorAll('input[name="to"]').forEach((r) => r.addEventListener("change", onTargetChange));
  $("#clear").addEventListener("click", () => {
    $("#log").replaceChildren();
    state.count = 0;
    $("#count").textContent = "0";
    $("#empty").hidden = false;
  });
  $("#show-heartbeats").addEventListener("change", (e) => {
    document.querySelectorAll('#log li[data-type="heartbeat"]').forEach((li) => { li.hidden = !e.target.checked; });
  });
  onTypeChange();

  try {
    const res = await fetch("/demo/config");
    state.cfg = await res.json();
  } catch (err) {
    setState("closed", "Hub unreachable");
    return;
  }
  const mode = $("#mode");
  mode.hidden = false;
  if (state.cfg.dev) {
    mode.textContent = "dev mode";
    $("#dev-conn").hidden = false;
    let saved = "";
    try { saved = localStorage.getItem("ssehub.demo.user") || ""; } catch (_) { /* private mode */ }
    try {
      await mintToken(saved);
    } catch (err) {
      // A stored user the hub refuses: start as a new one.
      await mintToken("");
    }
    connect("");
    $("#reconnect").addEventListener("click", async () => {
      try {
        await mintToken($("#user").value.trim());
        state.lastId = "";
        setFact("#fact-last", "");
        connect("");
      } catch (err) {
        systemEntry("Could not switch user: " + err.message);
      }
    });
  } else {
    mode.textContent = "debugger";
    mode.classList.add("debugger");
    $("#paste-conn").hidden = false;
    setState("idle", "Paste a token");
    $("#connect").addEventListener("click", () => {
      state.token = $("#token").value.trim();
      if (!state.token) return;
      const claims = jwtClaims(state.token);
      // A new token for the same user (the last one expired) resumes
      // where the stream was; another user's starts afresh.
      const from = claims.sub && claims.sub === state.user ? state.lastId : "";
      state.user = claims.sub || "";
      setFact("#fact-user", state.user);
      showGrants(claims[state.cfg.tenant_claim], claims.topics, claims.allowed_topics);
      state.lastId = from;
      connect(from);
    });
  }
}

start();
