// A live dashboard for operators: one self-contained page that polls the hub's JSON views
// (/healthz, /queues, /clients, /dead-letters) once a second. No build step, no dependency.
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>queuehub</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2330; background: #f7f8fa; }
  h1 { font-size: 1.3rem; margin: 0 0 .25rem; } h2 { font-size: 1rem; margin: 1.5rem 0 .5rem; }
  .status { display: inline-block; padding: .1rem .5rem; border-radius: 1rem; color: #fff; background: #888; }
  .healthy { background: #1f8a4c; } .degraded { background: #c0392b; }
  table { border-collapse: collapse; width: 100%; background: #fff; }
  th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #e3e6ea; font-variant-numeric: tabular-nums; }
  th { background: #eef0f3; font-weight: 600; } .empty { color: #888; font-style: italic; }
  input { font: inherit; padding: .2rem .4rem; } button { font: inherit; margin-right: .3rem; }
  #error { color: #c0392b; }
</style>
</head>
<body>
<h1>queuehub <span id="status" class="status">…</span></h1>
<div>namespace <input id="ns" value="/" size="12"> token <input id="token" type="password" size="24"
  placeholder="only with HUB_SECRET"> <span id="error"></span></div>
<h2>Namespaces</h2><table id="namespaces"></table>
<h2>Queues</h2><table id="queues"></table>
<h2>Connected clients</h2><table id="clients"></table>
<h2>Dead letters</h2><table id="dead"></table>
<script>
const $ = (id) => document.getElementById(id);
const esc = (v) => String(v).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const headers = () => ($("token").value ? { authorization: "Bearer " + $("token").value } : {});
const get = async (path) => {
  const res = await fetch(path, { headers: headers() });
  const body = await res.json();
  if (!res.ok && !("status" in body)) throw new Error(body.error ? body.error.code + ": " + body.error.message : res.status);
  return body;
};
const table = (el, cols, rows, actions) => {
  el.innerHTML = "<tr>" + cols.map((c) => "<th>" + esc(c) + "</th>").join("") + (actions ? "<th></th>" : "") + "</tr>" +
    (rows.length ? rows.map((r) => "<tr>" + cols.map((c) => "<td>" + esc(typeof r[c] === "object" ? JSON.stringify(r[c]) : r[c]) + "</td>").join("") +
      (actions ? "<td>" + actions(r) + "</td>" : "") + "</tr>").join("") :
      '<tr><td class="empty" colspan="' + (cols.length + 1) + '">none</td></tr>');
};
async function dead(action, id) {
  const ns = encodeURIComponent($("ns").value);
  await fetch("/dead-letters/" + action + "?ns=" + ns, { method: "POST", headers: headers(), body: JSON.stringify({ messageIds: [id] }) });
  refresh();
}
async function refresh() {
  try {
    const ns = encodeURIComponent($("ns").value);
    const [health, namespaces, queues, clients, dl] = await Promise.all([
      get("/healthz"), get("/namespaces"), get("/queues?ns=" + ns), get("/clients?ns=" + ns),
      get("/dead-letters?ns=" + ns + "&limit=100"),
    ]);
    table($("namespaces"), ["ns", "queues", "pending", "subscriptions", "clients"], namespaces.namespaces);
    $("status").textContent = health.status + " · " + health.store + " · " + health.connections + " connections";
    $("status").className = "status " + health.status;
    table($("queues"), ["queue", "pending", "inFlight"], queues.queues);
    table($("clients"), ["clientId", "socketId"], clients.clients);
    table($("dead"), ["messageId", "queue", "event", "reason", "deliveries", "payload"], dl.deadLetters, (r) =>
      '<button onclick="dead(\\'requeue\\', \\'' + esc(r.messageId) + '\\')">requeue</button>' +
      '<button onclick="dead(\\'drop\\', \\'' + esc(r.messageId) + '\\')">drop</button>');
    $("error").textContent = "";
  } catch (err) {
    $("error").textContent = String(err.message || err);
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
`;
