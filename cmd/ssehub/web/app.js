// ssehub demo page: the hub's browser client, @ssekit/client, against
// this hub, plus a publish form. ssekit-client.js is the client's build
// (js/dist/index.js), copied here so that the binary serves the page with
// no build step; the page itself is plain JavaScript.
import { connect } from "./ssekit-client.js";

const $ = (sel) => document.querySelector(sel);

const SAMPLE_DATA = {
  notification: { type: "follow", title: "New follower!", message: "Ada Lovelace started following you." },
  badge_update: { count: 3 },
  new_item: { item_type: "post", item_id: "42", item: { title: "Hello, live world" } },
  message: { text: "Hi there 👋" },
  "": { anything: "goes" },
};

const state = {
  cfg: null,
  client: null, // the stream's client; a new one for each user, token pasted or set of topics
  user: "",
  tenant: "",
  topics: new Set(), // the topics joined, asked for with ?topic= on every (re)open
  token: "", // the token the stream opens with: minted (dev mode) or pasted
  expiresAt: 0, // when a minted token expires (ms)
  // ttl is the lifetime the page asks of dev tokens: its own ?ttl=, a
  // dev-only knob (e.g. /?ttl=5s) to watch tokens expire; "" for the hub's.
  ttl: new URLSearchParams(location.search).get("ttl") || "",
  openNote: "", // said once the stream is live again
  publishKey: "",
  clientId: "",
  count: 0,
};

// ---- connection ----------------------------------------------------------

// The pill's data-state and text for each of the client's states.
const PILL = {
  connecting: ["connecting", "Connecting"],
  live: ["open", "Live"],
  retrying: ["reconnecting", "Reconnecting"],
  closed: ["closed", "Closed"],
};

// What the Stream fact says of this tab's part in it.
const ROLE = {
  leader: "this tab holds it, for all tabs",
  follower: "another tab holds it",
  solo: "this tab's own",
};

function setState(name, text, title) {
  const pill = $("#state");
  pill.dataset.state = name;
  pill.title = title || "";
  $("#state-text").textContent = text;
}

function setFact(id, value) {
  $(id).textContent = value || "—";
  $(id).title = value || "";
}

// open starts a new client for the stream, from resumeFrom (the last id
// of the one before, when the page changes topics or pastes a new token
// for the same user; "" for a fresh stream). The client shares one stream
// among this page's tabs with the same user and topics, gets a new token
// when the hub says the token expired and resumes where it was, and
// reconnects with backoff; the page only shows what happens.
function open(resumeFrom) {
  if (state.client) state.client.close();
  const client = connect({
    url: state.cfg.prefix + "/stream",
    topics: [...state.topics],
    scope: state.user,
    lastEventId: resumeFrom || "",
    getToken,
    on: { "*": (ev) => client === state.client && onEvent(client, ev) },
    onState: (info) => client === state.client && onState(client, info),
  });
  state.client = client;
  setState("connecting", "Connecting");
}

// getToken is the client's: it gives the token to open the stream with,
// and is asked again, with the reason, when the hub ends a stream whose
// token expired (session_ended) or refuses one (401). In dev mode the
// page mints a new one; a pasted token it cannot renew: it says so and
// closes, and Connect with a new token resumes from the last event.
async function getToken(reason) {
  if (state.cfg.dev) {
    // A tab that takes the stream over from another may hold a token
    // that expired meanwhile: mint one rather than be refused.
    if (reason || Date.now() >= state.expiresAt) {
      if (reason && reason.code !== "credentials_expired") systemEntry("Stream refused (" + describe(reason) + "): getting a new token and resuming…");
      await mintToken(state.user);
      state.openNote = "Token refreshed, resumed";
    }
    return state.token;
  }
  if (!reason) return state.token;
  if (reason.code === "credentials_expired") {
    systemEntry("The token expired: paste a new one, and Connect resumes from the last event.");
  } else {
    systemEntry("Stream refused (" + describe(reason) + "). Paste a new token.");
  }
  state.client.close(reason);
  return null;
}

function describe(reason) {
  return [reason.status, reason.code].filter(Boolean).join(" ") + (reason.message ? ": " + reason.message : "");
}

function onState(client, { state: now, reason, role }) {
  setFact("#fact-stream", ROLE[role]);
  const [pill, text] = PILL[now];
  if (now === "live") {
    setState(pill, text);
    if (state.openNote) systemEntry(state.openNote);
    state.openNote = "";
    return;
  }
  if (now !== "closed") {
    setState(pill, now === "retrying" && reason.code === "credentials_expired" ? "Refreshing token" : text, reason && describe(reason));
    return;
  }
  const code = reason && reason.code;
  setState(pill, code === "credentials_expired" ? "Token expired" : code === "session_revoked" ? "Session revoked" : text, reason && describe(reason));
  if (code === "session_revoked") systemEntry("Session revoked: sign in again.");
  if (reason && (reason.status === 400 || reason.status === 403)) onTopicRefused(client, reason);
}

// onTopicRefused shows why the hub refused the stream's topics (400 or
// 403, with the reason and the topics in its JSON), leaves them, and
// reopens with the rest from where the stream was.
function onTopicRefused(client, reason) {
  const msg = reason.message || "the hub answered " + reason.status;
  showTopicError(msg);
  systemEntry("Stream refused (" + reason.status + "): " + msg);
  // The answer names the refused topics; too many names none: leave the
  // last one joined.
  const refused = reason.topics && reason.topics.length ? reason.topics : [...state.topics].slice(-1);
  const left = refused.filter((t) => state.topics.delete(t));
  renderTopics();
  if (left.includes($("#to-topic").value)) $("#to-topic").value = [...state.topics].pop() || "";
  // A refusal for topics the page did not join (the token's own) would
  // come back at every reopen: stay closed.
  if (left.length > 0) open(client.lastEventId);
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
  if (state.client) open(state.client.lastEventId);
}

function leave(topic) {
  state.topics.delete(topic);
  renderTopics();
  if (state.client) open(state.client.lastEventId);
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
// ---- events ------------------------------------------------------------

function onEvent(client, ev) {
  setFact("#fact-last", client.lastEventId);
  const data = ev.data;
  switch (ev.type) {
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
  addEntry(ev.type, ev.id, data);
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
// of the lifetime state.ttl if set.
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
  state.token = body.token;
  state.expiresAt = Date.parse(body.expires_at) || 0;
  state.publishKey = body.publish_key;
  $("#user").value = body.user;
  setFact("#fact-user", body.user);
  showGrants(body.tenant, [], body.allowed_topics);
  try { localStorage.setItem("ssehub.demo.user", body.user); } catch (_) { /* private mode */ }
}

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
    open("");
    $("#reconnect").addEventListener("click", async () => {
      try {
        await mintToken($("#user").value.trim());
        setFact("#fact-last", "");
        open("");
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
      const from = claims.sub && claims.sub === state.user && state.client ? state.client.lastEventId : "";
      state.user = claims.sub || "";
      setFact("#fact-user", state.user);
      showGrants(claims[state.cfg.tenant_claim], claims.topics, claims.allowed_topics);
      open(from);
    });
  }
}

start();
