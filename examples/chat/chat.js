// The queuehub chat example: rooms where nobody misses a line. Your name is your clientId; rooms
// are durable (membership by clientId), so lines sent while your tab was closed wait in your
// queue and the hub streams them when you are back. Plain JavaScript on the client library the
// hub serves (/queuehub/client.js); no build step.
//
// ?hub=http://host:3000 talks to another hub than the one that served the page (its origin must
// then be in that hub's HUB_CORS_ORIGINS); ?ns= picks the namespace (default /chat); ?name= enters at once.

const params = new URLSearchParams(location.search);
/** The hub: ?hub=, else the one that served this page (/examples/chat/ → /). */
const HUB = new URL(withSlash(params.get("hub") ?? "../../"), location.href);
const NAMESPACE = params.get("ns") ?? "/chat";
const EVENT = "message";
const NAME = /^[A-Za-z0-9 ._:@-]{1,40}$/;

const { HubClient } = await import(new URL("queuehub/client.js", HUB).href);

const $ = (id) => document.getElementById(id);

const state = {
  me: null,
  client: null,
  /** room → { lines: [...], unread, members: Map(clientId → online), awayMarked } */
  rooms: new Map(),
  current: null,
  /** When this page first connected: lines published before it were sent while you were away. */
  connectedAt: null,
};

function withSlash(url) {
  return url.endsWith("/") ? url : `${url}/`;
}

// ---- entering ---------------------------------------------------------------------------------------

// What was typed while the page loaded stays.
$("name").value ||= params.get("name") ?? localStorage.getItem("queuehub.chat.name") ?? "";
$("enter").addEventListener("submit", (event) => {
  event.preventDefault();
  enter($("name").value.trim());
});
$("enter").querySelector("button").disabled = false;
if (params.get("name")) enter(params.get("name"));

const roomsKey = (name) => `queuehub.chat.rooms:${NAMESPACE}:${name}`;
const remembered = (name) => JSON.parse(localStorage.getItem(roomsKey(name)) ?? "null");
const remember = () => localStorage.setItem(roomsKey(state.me), JSON.stringify([...state.rooms.keys()]));

async function enter(name) {
  if (!NAME.test(name)) {
    $("enter-error").textContent = "Use 1–40 letters, digits, spaces or ._:@-";
    return;
  }
  $("enter-error").textContent = "";
  localStorage.setItem("queuehub.chat.name", name);
  state.me = name;
  const client = new HubClient({
    url: HUB.origin,
    namespace: NAMESPACE,
    clientId: name,
    // A hub with HUB_SECRET needs a token; a development hub mints one (HUB_DEV_TOKENS=1).
    token: () => devToken(name),
  });
  state.client = client;
  client.on("connect", () => {
    state.connectedAt ??= Date.now();
    status("online", `connected as ${name}`);
    for (const room of state.rooms.keys()) void loadMembers(room);
  });
  client.on("disconnect", () => status("offline", "disconnected, reconnecting…"));
  client.on(EVENT, receive);
  client.on("presence", presence);
  client.on("hub:error", (error) => ($("say-error").textContent = `${error.code}: ${error.message}`));
  client.on("error", (err) => console.warn("chat:", err.message));
  try {
    await client.connect();
  } catch (err) {
    client.close();
    $("enter-error").textContent = refusal(err.message);
    return;
  }
  $("enter").hidden = true;
  $("chat").hidden = false;
  $("who").textContent = `you are ${name}`;
  // A returning user's rooms; a new one starts in the lobby. Joining again is harmless.
  for (const room of remembered(name) ?? ["lobby"]) await join(room);
  show(state.current ?? [...state.rooms.keys()][0]);
}

async function devToken(name) {
  const res = await fetch(new URL("dev/token", HUB), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ clientId: name }),
  });
  if (res.status === 404) return ""; // an open hub, or one without development tokens
  const body = await res.json();
  if (!body.ok) throw new Error(body.error.message);
  return body.token;
}

function refusal(message) {
  if (message === "unauthorized" || message === "clientId required") {
    return "This hub runs with HUB_SECRET and gave no token: start it with HUB_DEV_TOKENS=1 to try the chat, or have your app's server mint tokens (see the README).";
  }
  if (message === "invalid clientId") return "Use 1–40 letters, digits, spaces or ._:@-";
  return `The hub refused: ${message}`;
}

function status(stateName, text) {
  $("status").dataset.state = stateName;
  $("status").textContent = text;
}

// ---- rooms ---------------------------------------------------------------------------------------------

function room(name) {
  let r = state.rooms.get(name);
  if (!r) {
    r = { lines: [], unread: 0, members: new Map(), awayMarked: false };
    state.rooms.set(name, r);
  }
  return r;
}

async function join(name) {
  await state.client.join(name);
  room(name);
  remember();
  await loadMembers(name);
}

async function loadMembers(name) {
  const members = await state.client.members(name).catch(() => null);
  if (!members) return;
  const r = room(name);
  r.members = new Map(members.map((m) => [m.clientId, m.online]));
  if (name === state.current) drawMembers();
}

$("join").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("room-name").value.trim();
  if (!NAME.test(name)) return;
  $("room-name").value = "";
  try {
    await join(name);
    show(name);
  } catch (err) {
    $("say-error").textContent = err.message;
  }
});

$("leave").addEventListener("click", async () => {
  const name = state.current;
  if (name === null) return;
  await state.client.leave(name);
  state.rooms.delete(name);
  remember();
  show([...state.rooms.keys()][0] ?? null);
});

$("rooms").addEventListener("click", (event) => {
  const li = event.target.closest("li[data-room]");
  if (li) show(li.dataset.room);
});

function show(name) {
  state.current = name;
  if (name !== null) room(name).unread = 0;
  $("room-title").textContent = name === null ? "join a room" : `# ${name}`;
  $("members-room").textContent = name === null ? "" : `# ${name}`;
  $("leave").hidden = name === null;
  drawRooms();
  drawMembers();
  drawLines();
  $("text").focus();
}

// ---- lines -----------------------------------------------------------------------------------------------

/** A delivery: a line someone sent to one of your rooms (now, or while you were away). */
function receive(payload, message) {
  const name = message.room ?? "direct";
  const r = room(name);
  if (r.lines.some((line) => line.id === message.messageId)) return;
  if (state.connectedAt !== null && message.publishedAt < state.connectedAt && !r.awayMarked) {
    r.awayMarked = true;
    add(name, { kind: "away", text: "while you were away" });
  }
  add(name, {
    kind: "line",
    id: message.messageId,
    from: message.from ?? "(hub)",
    text: typeof payload?.text === "string" ? payload.text : JSON.stringify(payload),
    at: message.publishedAt,
    source: "hub",
  });
  // A room you were put in while away (or forgot): remembered from now on.
  if (!(remembered(state.me) ?? []).includes(name)) remember();
}

function presence({ room: name, clientId, online }) {
  const r = state.rooms.get(name);
  if (!r) return;
  if (r.members.get(clientId) !== online) {
    r.members.set(clientId, online);
    add(name, { kind: "note", text: `${clientId} is ${online ? "online" : "offline"}` });
  }
  if (name === state.current) drawMembers();
}

$("say").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("text").value;
  const name = state.current;
  if (!text.trim() || name === null) return;
  $("say-error").textContent = "";
  try {
    // Stored in every other member's queue before this resolves; the hub sends you no copy.
    const id = await state.client.publish(EVENT, { text }, { room: name });
    $("text").value = "";
    add(name, { kind: "line", id, from: state.me, text, at: Date.now(), source: "self" });
  } catch (err) {
    $("say-error").textContent = `not sent: ${err.message}`;
  }
});

function add(name, line) {
  const r = room(name);
  r.lines.push(line);
  if (r.lines.length > 500) r.lines.shift();
  if (name === state.current) appendLine(line);
  else if (line.kind === "line") r.unread++;
  drawRooms();
}

function appendLine(line) {
  const list = $("lines");
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 20;
  list.append(lineElement(line));
  if (atBottom || line.source === "self") list.scrollTop = list.scrollHeight;
}

function lineElement(line) {
  const li = document.createElement("li");
  li.className = line.kind === "line" ? `line ${line.source}` : line.kind;
  if (line.kind !== "line") {
    li.textContent = line.text;
    return li;
  }
  li.dataset.id = line.id;
  li.dataset.from = line.from;
  li.dataset.source = line.source;
  const from = document.createElement("span");
  from.className = "from";
  from.textContent = line.from;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = line.text;
  const time = document.createElement("time");
  time.dateTime = new Date(line.at).toISOString();
  time.textContent = new Date(line.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  li.append(from, text, time);
  return li;
}

function drawLines() {
  const list = $("lines");
  list.replaceChildren(...(state.current === null ? [] : room(state.current).lines.map(lineElement)));
  list.scrollTop = list.scrollHeight;
}

function drawRooms() {
  $("rooms").replaceChildren(
    ...[...state.rooms].map(([name, r]) => {
      const li = document.createElement("li");
      li.dataset.room = name;
      li.classList.toggle("current", name === state.current);
      const label = document.createElement("span");
      label.textContent = `# ${name}`;
      li.append(label);
      if (r.unread > 0) {
        const badge = document.createElement("span");
        badge.className = "unread";
        badge.textContent = String(r.unread);
        li.append(badge);
      }
      return li;
    }),
  );
}

function drawMembers() {
  const r = state.current === null ? null : state.rooms.get(state.current);
  const members = r ? [...r.members] : [];
  members.sort(([a, ao], [b, bo]) => Number(bo) - Number(ao) || a.localeCompare(b));
  $("members").replaceChildren(
    ...members.map(([clientId, online]) => {
      const li = document.createElement("li");
      li.dataset.member = clientId;
      li.className = `${online ? "online" : "offline"}${clientId === state.me ? " me" : ""}`;
      li.textContent = clientId === state.me ? `${clientId} (you)` : clientId;
      return li;
    }),
  );
}
