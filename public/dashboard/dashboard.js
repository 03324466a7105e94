// The queuehub dashboard: polls the hub's JSON views and /metrics once a second and draws them.
// Rows are updated in place (keyed), never redrawn, and nothing is redrawn while a pointer is
// down, so a click always lands on the row it was aimed at. No framework, no build step.

/** The hub's routes are beside the dashboard's folder (/dashboard/ → /), also under a host's prefix. */
const HUB = new URL("../", location.href);
const TIMEOUT_MS = 3000;
/** Rows per page of a view (dead letters carry payloads: fewer). */
const PAGE = { dead: 25 };
const PAGE_DEFAULT = 100;
const CHART_SECONDS = 300;

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
/** Milliseconds between refreshes: `?refresh=` (at least 250), else one second. */
const REFRESH_MS = Math.max(250, Number(params.get("refresh")) || 1000);

const state = {
  /** The namespace shown; null until chosen (by ?ns=, a click, or the busiest). */
  ns: params.get("ns"),
  room: null,
  /** Pages shown per view: "more" adds one. */
  pages: { namespaces: 1, queues: 1, rooms: 1, members: 1, dead: 1 },
  /** Dead letters ticked, by messageId. */
  selected: new Set(),
  /** /metrics samples: { t, published, delivered, depth }. */
  samples: [],
  pointerDown: false,
  /** The last data fetched while a pointer was down, drawn once it is released. */
  waiting: null,
  busy: false,
};

// ---- talking to the hub ---------------------------------------------------------------------

class Unreachable extends Error {}

function headers(extra = {}) {
  const token = $("token").value.trim();
  return token ? { ...extra, authorization: `Bearer ${token}` } : extra;
}

/** One request to the hub: { status, body }; throws Unreachable when the hub does not answer. */
async function call(path, init = {}) {
  let res;
  try {
    res = await fetch(new URL(path, HUB), {
      ...init,
      headers: headers(init.headers),
      signal: AbortSignal.timeout(TIMEOUT_MS),
      cache: "no-store",
    });
  } catch (err) {
    throw new Unreachable(err.name === "TimeoutError" ? "no answer within 3 s" : "connection failed");
  }
  const text = await res.text().catch(() => "");
  let body = text;
  if ((res.headers.get("content-type") ?? "").includes("json")) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  return { status: res.status, body };
}

/** A paged view, its first `pages` pages: { items, next }; throws on a refusal. */
async function view(path, key, pages, limit = PAGE_DEFAULT) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < pages; i++) {
    const sep = path.includes("?") ? "&" : "?";
    const { status, body } = await call(
      `${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
    );
    if (status !== 200 || !body?.ok) throw refusal(status, body);
    items.push(...body[key]);
    cursor = body.next ?? null;
    if (cursor === null) break;
  }
  return { items, next: cursor };
}

function refusal(status, body) {
  const code = body?.error?.code ?? `HTTP ${status}`;
  const err = new Error(body?.error?.message ?? `the hub answered ${status}`);
  err.code = code;
  err.status = status;
  return err;
}

const nsParam = () => encodeURIComponent(state.ns ?? "/");

// ---- refresh ------------------------------------------------------------------------------------

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    const health = await call("healthz");
    // The hub answered: its health shows even when the views below are refused (no token yet).
    showHealth(health);
    const metrics = await call("metrics").catch(() => null);
    const namespaces = await view("namespaces", "namespaces", state.pages.namespaces);
    if (state.ns === null) chooseNamespace(busiest(namespaces.items), false);
    const ns = nsParam();
    const room = state.room;
    const [queues, clients, rooms, dead, members] = await Promise.all([
      view(`queues?ns=${ns}`, "queues", state.pages.queues),
      call(`clients?ns=${ns}`).then(({ status, body }) => {
        if (status !== 200 || !body?.ok) throw refusal(status, body);
        return body.clients;
      }),
      view(`rooms?ns=${ns}`, "rooms", state.pages.rooms),
      view(`dead-letters?ns=${ns}`, "deadLetters", state.pages.dead, PAGE.dead),
      room === null
        ? Promise.resolve(null)
        : view(`rooms?ns=${ns}&room=${encodeURIComponent(room)}`, "members", state.pages.members),
    ]);
    sample(metrics);
    show({ namespaces, queues, clients, rooms, dead, members });
  } catch (err) {
    if (err instanceof Unreachable) unreachable(err.message);
    else refused(err);
  } finally {
    state.busy = false;
  }
}

function loop() {
  refresh().finally(() => setTimeout(loop, REFRESH_MS));
}

/** Draws now, or once the pointer is released: a row never moves under a click. */
function show(data) {
  if (state.pointerDown) {
    state.waiting = data;
    return;
  }
  draw(data);
}

document.addEventListener("pointerdown", () => {
  state.pointerDown = true;
});
for (const type of ["pointerup", "pointercancel"]) {
  document.addEventListener(type, () => {
    state.pointerDown = false;
    // After the click's own handler has run.
    setTimeout(() => {
      if (state.waiting && !state.pointerDown) {
        const data = state.waiting;
        state.waiting = null;
        draw(data);
      }
    }, 0);
  });
}

// ---- status -----------------------------------------------------------------------------------

let lastSeen = null;

function showHealth(health) {
  lastSeen = new Date();
  const ok = health.status === 200;
  const body = health.body ?? {};
  setBadge(ok ? "healthy" : "degraded", ok ? "healthy" : (body.status ?? "degraded"));
  $("summary").textContent =
    `${body.store ?? "?"} store · ${body.connections ?? "?"} connections · updated ${lastSeen.toLocaleTimeString()}`;
}

function draw({ namespaces, queues, clients, rooms, dead, members }) {
  document.querySelector("main").classList.remove("stale");
  notice(null);

  drawNamespaces(namespaces);
  drawQueues(queues);
  drawClients(clients);
  drawRooms(rooms, members);
  drawDead(dead);
  drawChart();
}

function setBadge(state, text) {
  const badge = $("status");
  badge.dataset.state = state;
  badge.textContent = text;
}

function unreachable(why) {
  setBadge("unreachable", "hub unreachable");
  notice(
    `The hub at ${HUB.origin} does not answer (${why}). ${lastSeen ? `What you see is from ${lastSeen.toLocaleTimeString()}; ` : ""}retrying every second.`,
  );
  $("summary").textContent =
    `${why}${lastSeen ? ` · last answer ${lastSeen.toLocaleTimeString()}` : ""} · retrying`;
  document.querySelector("main").classList.add("stale");
}

function refused(err) {
  if (err.status === 401 || err.status === 403) {
    notice(
      `The hub refused the views (${err.code}): it runs with HUB_SECRET. Paste an operator token (role "operator") above.`,
    );
  } else notice(`${err.code}: ${err.message}`);
}

function notice(text) {
  const el = $("notice");
  el.hidden = text === null;
  if (text !== null) el.textContent = text;
}

// ---- tables -------------------------------------------------------------------------------------

/**
 * Puts `items` into a table's body, one row per key, updating the rows already there in place
 * (cells are rewritten only when their text changed; inputs and buttons stay as they are).
 * Each column is { text(item), cls?, title?(item) } or { make(td, item) } for cells made once.
 */
function rows(table, items, key, columns, empty = "none") {
  const body = table.tBodies[0];
  const old = new Map();
  for (const tr of [...body.rows]) {
    if (tr.dataset.key === undefined) tr.remove();
    else old.set(tr.dataset.key, tr);
  }
  let before = body.firstChild;
  for (const item of items) {
    const k = String(key(item));
    let tr = old.get(k);
    if (tr) old.delete(k);
    else {
      tr = document.createElement("tr");
      tr.dataset.key = k;
      for (const col of columns) {
        const td = tr.insertCell();
        if (col.cls) td.className = col.cls;
        if (col.make) col.make(td, item);
      }
    }
    columns.forEach((col, i) => {
      if (!col.text) return;
      const td = tr.cells[i];
      const text = String(col.text(item));
      if (td.textContent !== text) td.textContent = text;
      if (col.title) td.title = col.title(item);
    });
    if (tr !== before) body.insertBefore(tr, before);
    before = tr.nextSibling;
  }
  for (const tr of old.values()) tr.remove();
  if (items.length === 0) {
    const tr = body.insertRow();
    tr.className = "empty";
    const td = tr.insertCell();
    td.colSpan = table.tHead.rows[0].cells.length;
    td.textContent = empty;
  }
}

function more(view, next) {
  document.querySelector(`button.more[data-view="${view}"]`).hidden = next === null;
}

function drawNamespaces({ items, next }) {
  rows($("namespaces"), items, (n) => n.ns, [
    { text: (n) => n.ns },
    { text: (n) => n.pending, cls: "n" },
    { text: (n) => n.queues, cls: "n" },
    { text: (n) => n.subscriptions, cls: "n" },
    { text: (n) => n.rooms, cls: "n" },
    { text: (n) => n.deadLetters, cls: "n" },
    { text: (n) => n.clients, cls: "n" },
  ]);
  for (const tr of $("namespaces").tBodies[0].rows)
    tr.classList.toggle("selected", tr.dataset.key === state.ns);
  more("namespaces", next);
}

function drawQueues({ items, next }) {
  rows($("queues"), items, (q) => q.queue, [
    { text: (q) => q.queue },
    { text: (q) => q.pending, cls: "n" },
    { text: (q) => q.inFlight, cls: "n" },
  ]);
  more("queues", next);
}

function drawClients(clients) {
  rows($("clients"), clients, (c) => c.socketId, [{ text: (c) => c.clientId }, { text: (c) => c.socketId }]);
}

function drawRooms({ items, next }, members) {
  rows($("rooms"), items, (r) => r.room, [{ text: (r) => r.room }, { text: (r) => r.members, cls: "n" }]);
  for (const tr of $("rooms").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.key === state.room);
  more("rooms", next);
  $("room").textContent = state.room ?? "—";
  rows(
    $("members"),
    members?.items ?? [],
    (m) => m.clientId,
    [
      { text: (m) => m.clientId },
      {
        text: (m) => (m.online ? "● online" : "○ offline"),
        make: () => {},
      },
    ],
    state.room === null ? "pick a room" : "no members",
  );
  for (const tr of $("members").tBodies[0].rows) {
    const cell = tr.cells[1];
    if (cell) cell.className = cell.textContent.includes("online") ? "online" : "offline";
  }
  more("members", members?.next ?? null);
}

function when(ms) {
  const d = new Date(ms);
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}

function drawDead({ items, next }) {
  const shown = new Set(items.map((d) => d.messageId));
  for (const id of state.selected) if (!shown.has(id)) state.selected.delete(id);
  rows(
    $("dead"),
    items,
    (d) => d.messageId,
    [
      {
        make: (td, d) => {
          const box = document.createElement("input");
          box.type = "checkbox";
          box.className = "pick";
          box.setAttribute("aria-label", `select ${d.messageId}`);
          td.append(box);
        },
      },
      { text: (d) => when(d.deadAt), title: (d) => `published ${when(d.publishedAt)}` },
      { text: (d) => d.event },
      { text: (d) => d.queue },
      { text: (d) => d.reason },
      { text: (d) => d.deliveries, cls: "n" },
      {
        text: (d) => JSON.stringify(d.payload),
        cls: "payload",
        title: (d) => JSON.stringify(d.payload, null, 2),
      },
      {
        make: (td) => {
          for (const action of ["requeue", "drop"]) {
            const button = document.createElement("button");
            button.textContent = action;
            button.dataset.action = action;
            if (action === "drop") button.className = "danger";
            td.append(button);
          }
        },
      },
    ],
    "no dead letters",
  );
  for (const tr of $("dead").tBodies[0].rows) {
    const box = tr.querySelector("input.pick");
    if (box) box.checked = state.selected.has(tr.dataset.key);
  }
  more("dead", next);
  selectionChanged();
}

function selectionChanged() {
  const n = state.selected.size;
  $("requeue").disabled = n === 0;
  $("drop").disabled = n === 0;
  $("requeue").textContent = n ? `requeue ${n} selected` : "requeue selected";
  $("drop").textContent = n ? `drop ${n} selected` : "drop selected";
  const boxes = $("dead").querySelectorAll("input.pick");
  $("select-all").checked = boxes.length > 0 && [...boxes].every((b) => b.checked);
}

// ---- actions --------------------------------------------------------------------------------------

async function act(action, messageIds) {
  if (messageIds.length === 0) return;
  const result = $("action-result");
  try {
    const { status, body } = await call(`dead-letters/${action}?ns=${nsParam()}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messageIds }),
    });
    if (status !== 200 || !body?.ok) throw refusal(status, body);
    const done = action === "drop" ? body.dropped : messageIds.length;
    result.textContent = `${action === "drop" ? "dropped" : "requeued"} ${done} at ${new Date().toLocaleTimeString()}`;
    for (const id of messageIds) state.selected.delete(id);
  } catch (err) {
    result.textContent =
      err instanceof Unreachable ? `${action} failed: hub unreachable` : `${action} failed: ${err.message}`;
  }
  refresh();
}

$("dead").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  act(button.dataset.action, [button.closest("tr").dataset.key]);
});
$("dead").addEventListener("change", (event) => {
  const box = event.target.closest("input.pick");
  if (!box) return;
  const id = box.closest("tr").dataset.key;
  if (box.checked) state.selected.add(id);
  else state.selected.delete(id);
  selectionChanged();
});
$("select-all").addEventListener("change", () => {
  for (const box of $("dead").querySelectorAll("input.pick")) {
    box.checked = $("select-all").checked;
    const id = box.closest("tr").dataset.key;
    if (box.checked) state.selected.add(id);
    else state.selected.delete(id);
  }
  selectionChanged();
});
$("requeue").addEventListener("click", () => act("requeue", [...state.selected]));
$("drop").addEventListener("click", () => act("drop", [...state.selected]));

// ---- choosing ---------------------------------------------------------------------------------------

function busiest(namespaces) {
  const score = (n) => [n.pending, n.clients, n.deadLetters, n.subscriptions];
  let best = null;
  for (const n of namespaces) {
    if (best === null) best = n;
    else {
      const a = score(n);
      const b = score(best);
      const i = a.findIndex((v, k) => v !== b[k]);
      if (i >= 0 && a[i] > b[i]) best = n;
    }
  }
  return best?.ns ?? "/";
}

function chooseNamespace(ns, byUser) {
  if (ns === state.ns && !byUser) return;
  state.ns = ns;
  state.room = null;
  state.selected.clear();
  Object.assign(state.pages, { queues: 1, rooms: 1, members: 1, dead: 1 });
  $("ns").textContent = ns;
  $("chart-ns").textContent = ns;
  const url = new URL(location.href);
  url.searchParams.set("ns", ns);
  history.replaceState(null, "", url);
  if (byUser) refresh();
}

$("namespaces").addEventListener("click", (event) => {
  const tr = event.target.closest("tr[data-key]");
  if (tr) chooseNamespace(tr.dataset.key, true);
});
$("rooms").addEventListener("click", (event) => {
  const tr = event.target.closest("tr[data-key]");
  if (!tr) return;
  state.room = tr.dataset.key;
  state.pages.members = 1;
  refresh();
});
for (const button of document.querySelectorAll("button.more")) {
  button.addEventListener("click", () => {
    state.pages[button.dataset.view]++;
    refresh();
  });
}

const TOKEN_KEY = "queuehub.operatorToken";
$("token").value = sessionStorage.getItem(TOKEN_KEY) ?? "";
$("token-form").addEventListener("submit", (event) => event.preventDefault());
$("token").disabled = false;
$("token").addEventListener("change", () => {
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  refresh();
});

// ---- the chart -----------------------------------------------------------------------------------------

/** Sums a metric's samples in Prometheus text, those whose labels contain `match` only if given. */
function metric(text, name, match) {
  let sum = 0;
  let seen = false;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name) || (line[name.length] !== " " && line[name.length] !== "{")) continue;
    if (match && !line.includes(match)) continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (Number.isFinite(value)) {
      sum += value;
      seen = true;
    }
  }
  return seen ? sum : null;
}

function sample(metrics) {
  if (metrics?.status !== 200 || typeof metrics.body !== "string") return;
  const text = metrics.body;
  const ns = JSON.stringify(state.ns ?? "/");
  state.samples.push({
    t: Date.now(),
    published: metric(text, "queuehub_published_total"),
    delivered: metric(text, "queuehub_delivered_total"),
    depth: metric(text, "queuehub_queue_depth", `ns=${ns}`) ?? 0,
    ns: state.ns,
  });
  const cutoff = Date.now() - CHART_SECONDS * 1000 - 5000;
  while (state.samples.length > 0 && state.samples[0].t < cutoff) state.samples.shift();
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A round upper bound for an axis, at least 4 (so four grid steps are whole numbers). */
function nice(max) {
  if (max <= 4) return 4;
  const step = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (max <= m * step) return m * step;
  return 10 * step;
}

function drawChart() {
  const chart = $("chart");
  // As wide as it is drawn, so the text is never stretched.
  const W = Math.max(400, Math.round(chart.getBoundingClientRect().width) || 900);
  chart.setAttribute("viewBox", `0 0 ${W} 180`);
  const H = 180;
  const left = 48;
  const right = 52;
  const top = 10;
  const bottom = 22;
  const now = Date.now();
  const x = (t) => left + ((t - (now - CHART_SECONDS * 1000)) / (CHART_SECONDS * 1000)) * (W - left - right);
  const rates = [];
  const samples = state.samples;
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1];
    const b = samples[i];
    const dt = (b.t - a.t) / 1000;
    if (dt <= 0 || a.published === null || b.published === null) continue;
    rates.push({
      t: b.t,
      published: Math.max(0, (b.published - a.published) / dt),
      delivered: Math.max(0, (b.delivered - a.delivered) / dt),
    });
  }
  const depths = samples.filter((s) => s.ns === state.ns);
  const rateMax = nice(Math.max(0, ...rates.flatMap((r) => [r.published, r.delivered])));
  const depthMax = nice(Math.max(0, ...depths.map((s) => s.depth)));
  const yRate = (v) => H - bottom - (v / rateMax) * (H - top - bottom);
  const yDepth = (v) => H - bottom - (v / depthMax) * (H - top - bottom);

  chart.replaceChildren();
  for (let i = 0; i <= 4; i++) {
    const y = top + (i * (H - top - bottom)) / 4;
    chart.append(svg("line", { x1: left, x2: W - right, y1: y, y2: y, class: "grid" }));
    const share = (4 - i) / 4;
    chart.append(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, fmt(rateMax * share)));
    chart.append(svg("text", { x: W - right + 6, y: y + 4 }, fmt(depthMax * share)));
  }
  for (let m = 0; m <= CHART_SECONDS / 60; m++) {
    const t = now - m * 60_000;
    chart.append(svg("text", { x: x(t), y: H - 6, "text-anchor": "middle" }, m === 0 ? "now" : `-${m} min`));
  }
  const line = (points, cls) => {
    if (points.length < 2) return;
    chart.append(
      svg("polyline", {
        class: cls,
        points: points.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" "),
      }),
    );
  };
  line(
    rates.map((r) => [x(r.t), yRate(r.published)]),
    "published",
  );
  line(
    rates.map((r) => [x(r.t), yRate(r.delivered)]),
    "delivered",
  );
  line(
    depths.map((s) => [x(s.t), yDepth(s.depth)]),
    "depth",
  );
  if (samples.length < 2) {
    chart.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "collecting samples…"));
  }
}

function fmt(v) {
  if (v >= 1e6) return `${(v / 1e6).toFixed(v >= 1e7 ? 0 : 1)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(v >= 1e4 ? 0 : 1)}k`;
  return String(Math.round(v * 10) / 10);
}

// ---- start ----------------------------------------------------------------------------------------------

if (state.ns !== null) {
  $("ns").textContent = state.ns;
  $("chart-ns").textContent = state.ns;
}
loop();
