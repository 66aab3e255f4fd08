// The shoal console: a client of the admin API (/api/v1) and the schema registry.
//
// Safety rule for this file: user data (names, keys, values, headers, configs, schemas) is
// only ever put into the page as text (the h() helper sets textContent and attributes), never
// through innerHTML, so a "<script>" in a record stays the characters it is.
"use strict";

const API = "/api/v1";
const REGISTRY = ""; // the registry's API lives at the root of the same origin
const CSRF = { "X-Shoal-Admin": "console" };
const PAGE_SIZE = 50; // messages per page: the admin API allows up to 500
const OVERVIEW_POLL_MS = 3000; // how often the overview reads the traffic counters
const SPARK_POINTS = 40; // readings kept per chart (two minutes at the poll above)
const TAIL_POLL_MS = 1000; // how often live tail asks for new messages
const TAIL_ROWS_MAX = 500; // rows a live tail keeps on screen (older ones are dropped)
const DLQ_SUFFIX = ".dlq";
const REDRIVE_PAGE_SIZE = 500; // DLQ records read per request by "Redrive all" (the API's maximum)
const DLQ_PREFIX = "shoal.dlq.";

// ---- helpers ---------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "value") el.value = value;
    else if (name === "checked") el.checked = true;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, body, request) {
    super(body && body.message ? body.message : "HTTP " + status);
    this.status = status;
    this.slug = body && (body.error || body.error_code);
    this.request = request; // "GET /api/v1/groups/g": which request failed
  }
}

// Navigation generations: each route() starts a new one. An answer that arrives after the
// user moved to another page belongs to an older generation and is dropped (the promise never
// settles, so the old page's code stops there and never draws over the new page). Reads of the
// old page are also aborted; writes are not (the user asked for them; only their result is
// no longer shown).
let routeGeneration = 0;
let routeReads = new AbortController();
function newRouteGeneration() {
  routeGeneration++;
  routeReads.abort();
  routeReads = new AbortController();
}
function dropStale() {
  // How many answers were dropped so: tests wait on this instead of on time.
  document.body.dataset.staleDropped = String(Number(document.body.dataset.staleDropped || 0) + 1);
  return new Promise(() => {});
}

async function call(method, url, body) {
  const generation = routeGeneration;
  const init = { method, headers: { Accept: "application/json" } };
  if (method === "GET") init.signal = routeReads.signal;
  else Object.assign(init.headers, CSRF);
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  let data = null;
  const request = method + " " + url.split("?")[0];
  try {
    response = await fetch(url, init);
    try { data = await response.json(); } catch (e) { data = null; }
  } catch (err) {
    if (generation !== routeGeneration) return dropStale();
    // No HTTP answer at all (the server down, the network): said as such, with the request.
    throw new ApiError(0, { error: "no_answer", message: "no answer from the server (" + err.message + ")" }, request);
  }
  if (generation !== routeGeneration) return dropStale();
  if (!response.ok) throw new ApiError(response.status, data, request);
  return data;
}
const api = (method, path, body) => call(method, API + path, body);
const enc = encodeURIComponent;

function errorBox(err) {
  const slug = err.slug ? " (" + err.slug + ")" : "";
  return h("div", { class: "error", role: "alert" }, String(err.message) + slug);
}
// A live view's refreshes failing: one box at the top of the page, replaced at each failure,
// saying since when, how many refreshes failed in a row, which request and why; gone at the
// first refresh that works. (Each failure used to add a box of its own, without the request.)
function outage() {
  let since = null;
  let failures = 0;
  let box = null;
  return {
    failed(err) {
      if (since === null) since = new Date();
      failures++;
      const request = err.request ? err.request + ": " : "";
      const slug = err.slug ? " (" + err.slug + ")" : "";
      const next = h("div", { class: "error", role: "alert", id: "outage" },
        "Unavailable since " + since.toTimeString().slice(0, 8) + " (" + failures + " failed refresh" +
        (failures > 1 ? "es" : "") + "): " + request + String(err.message) + slug + "; retrying");
      if (box && box.isConnected) box.replaceWith(next); else main().prepend(next);
      box = next;
    },
    ended() {
      if (box) box.remove();
      box = null;
      since = null;
      failures = 0;
    },
  };
}
function notice(text) { return h("div", { class: "notice", role: "status" }, text); }

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}
function base64Of(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}
function when(ms) { return ms === null || ms === undefined ? "–" : new Date(ms).toISOString(); }

// {encoding, data} (or null) as text: UTF-8 as is, base64 as hex bytes.
function decodeBytes(v) {
  if (v === null || v === undefined) return null;
  if (v.encoding === "utf-8") return v.data;
  return null;
}
function hexOf(v) {
  if (!v) return "";
  const raw = v.encoding === "base64" ? atob(v.data) : unescape(encodeURIComponent(v.data));
  const out = [];
  for (let i = 0; i < raw.length; i += 16) {
    const chunk = raw.slice(i, i + 16);
    const hex = Array.from(chunk, (c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join(" ");
    const ascii = Array.from(chunk, (c) => (c >= " " && c <= "~" ? c : ".")).join("");
    out.push(i.toString(16).padStart(8, "0") + "  " + hex.padEnd(48) + " " + ascii);
  }
  return out.join("\n");
}
function shown(v) {
  if (v === null || v === undefined) return h("span", { class: "muted" }, "null");
  const text = decodeBytes(v);
  const cut = v.truncated ? h("span", { class: "badge truncated", title: "the page shows the first bytes only" },
    "truncated: " + v.size + " bytes") : null;
  const body = text === null ? h("span", { class: "muted", title: "binary" }, "0x " + hexOf(v).slice(10, 57)) : text;
  return cut ? h("span", {}, cut, " ", body) : body;
}
function prettyJson(text) {
  if (text === null) return null;
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return null; }
}
function headerText(headers) {
  return headers.map((x) => x.key + "=" + (decodeBytes(x.value) ?? (x.value ? "0x…" : "null"))).join("\n");
}
function header(msg, name) {
  const found = msg.headers.find((x) => x.key === name);
  return found ? decodeBytes(found.value) : null;
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  // Each segment decoded on its own: a name's "/" arrives as %2F and stays in its segment. A
  // malformed escape typed by hand ("100%") is taken as written rather than failing the page.
  const decode = (part) => { try { return decodeURIComponent(part); } catch (e) { return part; } };
  const parts = path ? path.split("/").map(decode) : [];
  return { parts, params: new URLSearchParams(query || "") };
}
function go(path, params) {
  const query = params && [...params].length ? "?" + params.toString() : "";
  location.hash = "#/" + path.map(enc).join("/") + query;
}

function table(columns, rows, attrs) {
  return h("table", attrs || {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.title)))),
    h("tbody", {}, rows));
}

const main = () => document.getElementById("main");
let pageTimer = null;
function render(...nodes) {
  main().replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
}

// ---- overview --------------------------------------------------------------------------

function spark(values) {
  const width = 220, height = 40;
  const max = Math.max(1, ...values);
  const points = values.map((v, i) =>
    (values.length < 2 ? 0 : (i * width) / (SPARK_POINTS - 1)).toFixed(1) + "," +
    (height - 2 - (v / max) * (height - 4)).toFixed(1)).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points);
  svg.append(line);
  return svg;
}

// A bar's filled part. Its width is set through the CSSOM: the page's CSP (style-src 'self')
// refuses a style attribute, which would leave the bar full.
function filled(fraction) {
  const el = h("div", {});
  el.style.width = (fraction * 100).toFixed(1) + "%";
  return el;
}

function card(label, value, extra) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value), extra);
}

async function overviewPage() {
  const history = { bytes_in: [], bytes_out: [], records_in: [], records_out: [] };
  let last = null;
  async function refresh() {
    const [info, groups] = await Promise.all([api("GET", "/broker"), api("GET", "/groups")]);
    const now = Date.now();
    if (last && info.traffic) {
      const seconds = Math.max(0.001, (now - last.at) / 1000);
      for (const key of Object.keys(history)) {
        history[key].push(Math.max(0, info.traffic[key] - last.traffic[key]) / seconds);
        if (history[key].length > SPARK_POINTS) history[key].shift();
      }
    }
    last = info.traffic ? { at: now, traffic: info.traffic } : null;
    const rate = (key, unit) => {
      const series = history[key];
      const current = series.length ? series[series.length - 1] : 0;
      return card(key.replace("_", " ") + " /s",
        unit === "bytes" ? bytes(Math.round(current)) : current.toFixed(1), spark(series));
    };
    const disk = info.disk;
    const used = disk ? 1 - disk.free_bytes / disk.capacity_bytes : 0;
    render(
      h("h1", {}, "Overview"),
      h("div", { class: "cards" },
        card("Broker", "node " + info.node_id, h("div", { class: "muted" }, "shoal " + info.version)),
        card("Topics", String(info.topics), h("div", { class: "muted" }, info.partitions + " partitions")),
        card("Consumer groups", String(groups.groups.length)),
        card("Disk free", disk ? bytes(disk.free_bytes) : "–",
          disk ? h("div", {}, h("div", { class: "muted" }, "of " + bytes(disk.capacity_bytes)),
            h("div", { class: "bar" }, filled(used))) : null)),
      // `shoal console` against a cluster lists its brokers; a dead one shows as down.
      info.brokers ? h("h2", {}, "Brokers") : null,
      info.brokers ? table([{ title: "Node", num: 1 }, { title: "Address" }, { title: "Status" }],
        info.brokers.map((b) => h("tr", { "data-broker": String(b.node_id) },
          h("td", { class: "num" }, b.node_id), h("td", {}, b.host === null ? "–" : b.host + ":" + b.port),
          h("td", { class: b.status === "up" ? null : "down" }, b.status))), { id: "brokers" }) : null,
      h("h2", {}, "Rates"),
      info.traffic === null
        // Served by `shoal console` against another cluster: traffic is a broker metric,
        // which Kafka's client APIs do not expose.
        ? h("p", { class: "muted", id: "no-rates" }, "Traffic rates come from broker metrics, which this cluster's client APIs do not expose.")
        : h("div", { class: "cards" }, rate("bytes_in", "bytes"), rate("records_in"), rate("bytes_out", "bytes"), rate("records_out")),
      h("h2", {}, "Traffic by topic (since start)"),
      table(
        [{ title: "Topic" }, { title: "Records in", num: 1 }, { title: "Bytes in", num: 1 }, { title: "Records out", num: 1 }, { title: "Bytes out", num: 1 }],
        info.topic_traffic.map((t) => h("tr", {},
          h("td", {}, h("a", { href: "#/topics/" + enc(t.topic) }, t.topic)),
          h("td", { class: "num" }, t.records_in), h("td", { class: "num" }, bytes(t.bytes_in)),
          h("td", { class: "num" }, t.records_out), h("td", { class: "num" }, bytes(t.bytes_out))))),
    );
  }
  await refresh();
  const down = outage();
  pageTimer = setInterval(() => refresh().then(() => down.ended(), (e) => down.failed(e)), OVERVIEW_POLL_MS);
}

// ---- topics ----------------------------------------------------------------------------

function messageCount(topic) {
  return topic.partitions.reduce((n, p) => n + Math.max(0, (p.high_watermark ?? 0) - (p.low_watermark ?? 0)), 0);
}
function sizeOf(topic) { return topic.partitions.reduce((n, p) => n + (p.size_bytes ?? 0), 0); }

async function topicsPage(params) {
  const { topics } = await api("GET", "/topics");
  const search = h("input", { type: "search", id: "topic-search", placeholder: "Search topics", value: params.get("q") || "" });
  const showInternal = h("input", { type: "checkbox", id: "show-internal" });
  const body = h("tbody", {});
  function fill() {
    const q = search.value.toLowerCase();
    body.replaceChildren(...topics
      .filter((t) => t.name.toLowerCase().includes(q) && (showInternal.checked || !t.internal))
      .map((t) => h("tr", { "data-topic": t.name },
        h("td", {}, h("a", { href: "#/topics/" + enc(t.name) }, t.name), t.internal ? h("span", { class: "badge" }, " internal") : null),
        h("td", { class: "num" }, t.partitions.length),
        h("td", { class: "num" }, messageCount(t)),
        h("td", { class: "num" }, bytes(sizeOf(t))),
        h("td", {}, h("a", { href: "#/messages/" + enc(t.name) }, "browse"), " · ",
          h("a", { href: "#/produce/" + enc(t.name) }, "produce")))));
  }
  search.addEventListener("input", fill);
  showInternal.addEventListener("change", fill);
  fill();
  const name = h("input", { id: "new-topic-name", placeholder: "name", required: true });
  const partitions = h("input", { id: "new-topic-partitions", type: "number", min: 1, value: "1" });
  const status = h("div", {});
  const create = h("form", {
    id: "create-topic",
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api("POST", "/topics", { name: name.value, partitions: Number(partitions.value) });
        go(["topics", name.value]);
      } catch (err) { status.replaceChildren(errorBox(err)); }
    },
  }, h("strong", {}, "Create a topic "), h("label", {}, "Name ", name), h("label", {}, "Partitions ", partitions),
  h("button", { type: "submit" }, "Create"), status);
  render(
    h("h1", {}, "Topics"),
    create,
    h("div", { class: "row" }, search, h("label", {}, showInternal, " show internal topics")),
    h("table", { id: "topics" }, h("thead", {}, h("tr", {}, ["Name", "Partitions", "Messages", "Size", ""].map((c) => h("th", {}, c)))), body),
  );
}

async function topicPage(name) {
  const topic = await api("GET", "/topics/" + enc(name));
  const status = h("div", { id: "topic-status" });
  const partitionRows = topic.partitions.map((p) => h("tr", {},
    h("td", { class: "num" }, p.partition), h("td", { class: "num" }, p.low_watermark ?? "–"),
    h("td", { class: "num" }, p.high_watermark ?? "–"), h("td", { class: "num" }, bytes(p.size_bytes)),
    h("td", { class: "num" }, p.leader ?? "none"), h("td", {}, (p.replicas ?? []).join(", ")),
    h("td", {}, (p.isr ?? []).join(", "))));
  const configRows = (topic.configs || []).map((c) => {
    const input = h("input", { value: c.value ?? "", "data-config": c.name, disabled: c.read_only });
    const save = h("button", {
      class: "secondary", disabled: c.read_only, "data-save": c.name,
      onclick: async () => {
        try {
          await api("PATCH", "/topics/" + enc(name) + "/configs", { set: { [c.name]: input.value } });
          status.replaceChildren(notice("Set " + c.name + " = " + input.value));
        } catch (err) { status.replaceChildren(errorBox(err)); }
      },
    }, "Save");
    return h("tr", {}, h("td", {}, c.name), h("td", {}, input, " ", save), h("td", { class: "muted" }, c.source));
  });
  const confirmName = h("input", { id: "confirm-delete", placeholder: "type the topic's name to confirm" });
  const deleteButton = h("button", {
    class: "danger", id: "delete-topic", disabled: true,
    onclick: async () => {
      try {
        await api("DELETE", "/topics/" + enc(name) + "?confirm=" + enc(confirmName.value));
        go(["topics"]);
      } catch (err) { status.replaceChildren(errorBox(err)); }
    },
  }, "Delete topic");
  confirmName.addEventListener("input", () => { deleteButton.disabled = confirmName.value !== name; });
  render(
    h("h1", {}, "Topic ", h("span", { id: "topic-name" }, name)),
    h("div", { class: "row" }, h("a", { href: "#/messages/" + enc(name) }, "Browse messages"), " · ",
      h("a", { href: "#/produce/" + enc(name) }, "Produce a message")),
    status,
    h("h2", {}, "Partitions"),
    table([{ title: "Partition", num: 1 }, { title: "Low watermark", num: 1 }, { title: "High watermark", num: 1 }, { title: "Size", num: 1 }, { title: "Leader", num: 1 }, { title: "Replicas" }, { title: "In sync" }], partitionRows, { id: "partitions" }),
    h("h2", {}, "Configs"),
    topic.configs === null ? h("p", { class: "muted" }, "Not authorized to describe configs.")
      : table([{ title: "Name" }, { title: "Value" }, { title: "Source" }], configRows, { id: "configs" }),
    h("h2", {}, "Delete"),
    h("div", { class: "panel row" }, confirmName, deleteButton),
  );
}

// ---- messages --------------------------------------------------------------------------

// extraColumns: functions of a message giving a cell each; otherHeaders: which headers the
// Headers column lists (all by default; the DLQ page shows its failure headers as columns).
// Schema-registry framed keys and values are decoded (schema_codec.js) unless the page says not to.
let decodeWithRegistry = true;
const registryJson = (path) => call("GET", REGISTRY + path);

function decodeInto(cell, detailCell, label, v) {
  if (!decodeWithRegistry || !v) return;
  SchemaDecode.decode(v, registryJson).then((decoded) => {
    if (decoded === null) return;
    const text = JSON.stringify(decoded.value);
    cell.replaceChildren(h("span", { class: "badge", title: "schema id " + decoded.id }, decoded.type + " #" + decoded.id), " ", text);
    cell.classList.add("decoded");
    detailCell.prepend(h("strong", {}, label + " (" + decoded.type + ", schema " + decoded.id + ")"),
      h("pre", { class: "decoded-json" }, JSON.stringify(decoded.value, null, 2)));
  }).catch((err) => cell.append(h("div", { class: "muted" }, "not decoded: " + err.message)));
}

function messageRows(messages, extraColumns, otherHeaders = () => true) {
  const rows = [];
  for (const m of messages) {
    const value = decodeBytes(m.value);
    const detail = h("tr", { class: "detail", hidden: true },
      h("td", { colspan: 6 + extraColumns.length },
        prettyJson(value) !== null ? [h("strong", {}, "Value (JSON)"), h("pre", { class: "json" }, prettyJson(value))] : null,
        h("strong", {}, "Value (hex)"), h("pre", { class: "hex" }, m.value ? hexOf(m.value) : "null"),
        m.key ? [h("strong", {}, "Key (hex)"), h("pre", {}, hexOf(m.key))] : null));
    const row = h("tr", { class: "message", "data-offset": m.offset, "data-partition": m.partition },
      h("td", { class: "num" }, m.partition), h("td", { class: "num" }, m.offset), h("td", {}, when(m.timestamp)),
      h("td", { class: "data key" }, shown(m.key)), h("td", { class: "data value" }, shown(m.value)),
      h("td", { class: "data headers" }, headerText(m.headers.filter(otherHeaders))),
      extraColumns.map((c) => h("td", { class: "data" }, c(m))));
    decodeInto(row.querySelector("td.key"), detail.firstChild, "Key", m.key);
    decodeInto(row.querySelector("td.value"), detail.firstChild, "Value", m.value);
    row.addEventListener("click", (e) => { if (e.target.tagName !== "INPUT" && e.target.tagName !== "BUTTON") detail.hidden = !detail.hidden; });
    rows.push(row, detail);
  }
  return rows;
}

// A spreadsheet runs a cell that starts with one of these as a formula (CSV injection):
// such cells are exported with a leading apostrophe, which spreadsheets show as text.
const FORMULA_START = /^[=+\-@\t\r]/;
function csvCell(text) {
  let cell = text === null || text === undefined ? "" : String(text);
  if (FORMULA_START.test(cell)) cell = "'" + cell;
  return /[",\n\r]/.test(cell) ? '"' + cell.replace(/"/g, '""') + '"' : cell;
}
function bytesCell(v) {
  if (v === null || v === undefined) return null;
  return v.encoding === "utf-8" ? v.data : "base64:" + v.data;
}
function download(name, type, text) {
  const link = h("a", { href: URL.createObjectURL(new Blob([text], { type })), download: name });
  document.body.append(link);
  link.click();
  link.remove();
}
function exportButtons(topicName, messages) {
  const csv = () => {
    const lines = [["partition", "offset", "timestamp", "key", "value", "headers"].join(",")];
    for (const m of messages) {
      const headers = m.headers.map((x) => x.key + "=" + (bytesCell(x.value) ?? "")).join(";");
      lines.push([m.partition, m.offset, m.timestamp, bytesCell(m.key), bytesCell(m.value), headers].map(csvCell).join(","));
    }
    download(topicName + ".csv", "text/csv", lines.join("\r\n") + "\r\n");
  };
  return [
    h("button", { id: "export-json", class: "secondary", type: "button",
      onclick: () => download(topicName + ".json", "application/json", JSON.stringify(messages, null, 2)) }, "Export page (JSON)"),
    h("button", { id: "export-csv", class: "secondary", type: "button", onclick: csv }, "Export page (CSV)"),
  ];
}

// Live tail: the newest page, then every TAIL_POLL_MS what arrived after it (the page cursor).
async function tail(topicName, query, tbody, info) {
  query.set("from", "newest");
  let page = await api("GET", "/topics/" + enc(topicName) + "/messages?" + query.toString());
  let shown = 0;
  const add = (messages) => {
    tbody.append(...messageRows(messages, []));
    shown += messages.length;
    while (tbody.children.length > TAIL_ROWS_MAX * 2) { tbody.firstChild.remove(); tbody.firstChild.remove(); }
    info.textContent = "Live: " + shown + " messages since opened · end offsets " +
      Object.entries(page.end_offsets).map(([p, o]) => p + ":" + o).join(", ");
  };
  add(page.messages);
  const down = outage();
  pageTimer = setInterval(async () => {
    const next = new URLSearchParams(query);
    next.delete("from");
    next.set("cursor", page.next_cursor);
    try {
      page = await api("GET", "/topics/" + enc(topicName) + "/messages?" + next.toString());
      add(page.messages);
      down.ended();
    } catch (err) { down.failed(err); }
  }, TAIL_POLL_MS);
}

async function messagesPage(topicName, params) {
  const { topics } = await api("GET", "/topics");
  if (!topicName) {
    render(h("h1", {}, "Messages"), h("p", {}, "Choose a topic:"),
      h("ul", {}, topics.filter((t) => !t.internal).map((t) => h("li", {}, h("a", { href: "#/messages/" + enc(t.name) }, t.name)))));
    return;
  }
  const topic = topics.find((t) => t.name === topicName);
  const field = (id, attrs) => h("input", Object.assign({ id, value: params.get(id) || "" }, attrs || {}));
  const partition = h("select", { id: "partition" }, h("option", { value: "" }, "all"),
    (topic ? topic.partitions : []).map((p) => h("option", { value: String(p.partition), selected: params.get("partition") === String(p.partition) }, String(p.partition))));
  const from = h("select", { id: "from" }, ["oldest", "newest", "offset", "timestamp"].map((f) =>
    h("option", { value: f, selected: (params.get("from") || "oldest") === f }, f)));
  const offset = field("offset", { type: "number", min: 0, placeholder: "offset" });
  const timestamp = field("timestamp", { placeholder: "ms or ISO time" });
  const until = field("until", { placeholder: "until: ms or ISO time" });
  const key = field("key", { placeholder: "key contains" });
  const value = field("value", { placeholder: "value contains" });
  const hdr = field("header", { placeholder: "header contains" });
  const decodeBox = h("input", { type: "checkbox", id: "decode", checked: params.get("decode") !== "0" });
  decodeWithRegistry = params.get("decode") !== "0";
  const form = h("form", {
    id: "browse",
    onsubmit: (e) => {
      e.preventDefault();
      const next = new URLSearchParams();
      for (const [name, el] of Object.entries({ partition, from, offset, timestamp, until, key, value, header: hdr })) {
        if (el.value) next.set(name, el.value);
      }
      if (!decodeBox.checked) next.set("decode", "0");
      go(["messages", topicName], next);
    },
  }, h("div", { class: "row" }, h("label", {}, "Partition ", partition), h("label", {}, "From ", from), offset, timestamp, until),
  h("div", { class: "row" }, key, value, hdr, h("label", {}, decodeBox, " decode with the schema registry"), h("button", { type: "submit" }, "Search")));
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  for (const name of ["partition", "from", "offset", "key", "value", "header", "cursor"]) {
    if (params.get(name)) query.set(name, params.get(name));
  }
  // Times as typed: milliseconds, or an ISO time the browser parses. "until" ends the window:
  // each partition is read up to its first record at or after it (ListOffsets by time).
  for (const name of ["timestamp", "until"]) {
    const raw = params.get(name);
    if (raw) query.set(name, /^\d+$/.test(raw) ? raw : String(Date.parse(raw)));
  }
  const head = [h("h1", {}, "Messages in ", h("a", { href: "#/topics/" + enc(topicName) }, topicName)), form];
  const tailParams = new URLSearchParams(params);
  tailParams.delete("cursor");
  if (params.get("tail")) {
    tailParams.delete("tail");
    const tbody = h("tbody", {});
    const info = h("p", { class: "muted", id: "tail-info" }, "Live tail starting…");
    render(head,
      h("div", { class: "row" }, h("button", { id: "stop-tail", class: "secondary", type: "button", onclick: () => go(["messages", topicName], tailParams) }, "Stop live tail")),
      info,
      h("table", { id: "messages" }, h("thead", {}, h("tr", {}, ["Partition", "Offset", "Timestamp", "Key", "Value", "Headers"].map((c) => h("th", {}, c)))), tbody));
    query.delete("cursor");
    await tail(topicName, query, tbody, info);
    return;
  }
  tailParams.set("tail", "1");
  let page;
  try {
    page = await api("GET", "/topics/" + enc(topicName) + "/messages?" + query.toString());
  } catch (err) { render(head, errorBox(err)); return; }
  const nextParams = new URLSearchParams(params);
  nextParams.set("cursor", page.next_cursor);
  render(head,
    h("p", { class: "muted", id: "page-info" }, page.messages.length + " messages on this page · end offsets " +
      Object.entries(page.end_offsets).map(([p, o]) => p + ":" + o).join(", ") + " · click a row for JSON and hex"),
    table([{ title: "Partition", num: 1 }, { title: "Offset", num: 1 }, { title: "Timestamp" }, { title: "Key" }, { title: "Value" }, { title: "Headers" }],
      messageRows(page.messages, []), { id: "messages" }),
    h("div", { class: "row" }, h("button", { id: "next-page", class: "secondary", onclick: () => go(["messages", topicName], nextParams) }, "Next page"),
      h("button", { id: "live-tail", class: "secondary", type: "button", onclick: () => go(["messages", topicName], tailParams) }, "Live tail"),
      exportButtons(topicName, page.messages), exportAllLinks(topicName, query)));
}

// Every message the query matches (not just this page), streamed by the API as a download.
function exportAllLinks(topicName, query) {
  const link = (format) => {
    const q = new URLSearchParams(query);
    q.delete("cursor");
    q.delete("limit");
    q.set("format", format);
    return h("a", { id: "export-all-" + format, class: "secondary", download: "",
      title: "Every message the query matches, 100,000 at most (and 1 GiB read): an export stopped " +
        "there ends with a note saying so, with the cursor that requests the rest",
      href: API + "/topics/" + enc(topicName) + "/messages/export?" + q.toString() }, "Export all matching (" + format.toUpperCase() + ")");
  };
  return [link("json"), link("csv")];
}

// ---- produce ---------------------------------------------------------------------------

async function producePage(topicName) {
  const { topics } = await api("GET", "/topics");
  const topicSelect = h("select", { id: "produce-topic" }, topics.filter((t) => !t.internal).map((t) =>
    h("option", { value: t.name, selected: t.name === topicName }, t.name)));
  const partition = h("input", { id: "produce-partition", type: "number", min: 0, placeholder: "by key" });
  const key = h("input", { id: "produce-key", placeholder: "none" });
  const value = h("textarea", { id: "produce-value", placeholder: "value (text or JSON)" });
  const headers = h("textarea", { id: "produce-headers", placeholder: "one header per line: name=value" });
  const status = h("div", { id: "produce-status" });
  // The value can be written with a registry schema (the subject's latest version).
  const subjects = await call("GET", REGISTRY + "/subjects").catch(() => []);
  const schemaSelect = h("select", { id: "produce-schema" }, h("option", { value: "" }, "none (bytes as typed)"),
    subjects.map((s) => h("option", { value: s }, s)));
  // Protobuf: which of the file's messages the value is (Confluent's message indexes).
  const messageName = h("input", { id: "produce-message", placeholder: "Protobuf: the file's first message" });
  const form = h("form", {
    id: "produce",
    onsubmit: async (e) => {
      e.preventDefault();
      const body = { key: key.value === "" ? null : key.value, value: value.value, headers: [] };
      if (schemaSelect.value) {
        try {
          const latest = await call("GET", REGISTRY + "/subjects/" + enc(schemaSelect.value) + "/versions/latest");
          const proto = latest.schemaType === "PROTOBUF";
          if (!proto && messageName.value.trim()) throw new Error("a message type applies to Protobuf schemas only");
          const serialized = proto
            ? (await call("GET", REGISTRY + "/schemas/ids/" + latest.id + "?format=serialized")).schema : null;
          const imports = proto ? await SchemaDecode.protoImports(latest, registryJson) : [];
          const framed = SchemaDecode.encode(latest.id, latest, JSON.parse(value.value), serialized, imports, messageName.value.trim());
          body.value = { encoding: "base64", data: base64Of(framed) };
        } catch (err) { status.replaceChildren(errorBox(err)); return; }
      }
      for (const line of headers.value.split("\n")) {
        if (!line.trim()) continue;
        const at = line.indexOf("=");
        body.headers.push(at < 0 ? { key: line, value: null } : { key: line.slice(0, at), value: line.slice(at + 1) });
      }
      if (partition.value !== "") body.partition = Number(partition.value);
      try {
        const written = await api("POST", "/topics/" + enc(topicSelect.value) + "/messages", body);
        status.replaceChildren(notice("Written to partition " + written.partition + " at offset " + written.offset));
      } catch (err) { status.replaceChildren(errorBox(err)); }
    },
  }, h("div", { class: "row" }, h("label", {}, "Topic ", topicSelect), h("label", {}, "Partition ", partition), h("label", {}, "Key ", key)),
  h("div", { class: "row" }, h("label", {}, "Value schema ", schemaSelect), h("label", {}, "Message type ", messageName),
    h("span", { class: "muted" }, "with a schema, the value is JSON")),
  h("label", {}, "Value"), value, h("label", {}, "Headers"), headers, h("div", { class: "row" }, h("button", { type: "submit" }, "Produce")), status);
  render(h("h1", {}, "Produce a message"), form);
}

// ---- consumer groups -------------------------------------------------------------------

// Burrow's verdict (OK, WARNING, or which error: STOP, STALL, REWIND), its reason as the
// tooltip. A backend that does not judge (Apache Kafka via `shoal console`) sends none.
function statusBadge(name, level, reason) {
  if (!name) return h("span", { class: "badge", title: "No committed offsets to judge" }, "–");
  return h("span", { class: "badge status-" + level.toLowerCase(), "data-status": name, title: reason }, name);
}
const groupBadge = (status) => (status ? statusBadge(status.worst, status.group, status.reason) : statusBadge(null));
const partitionLevel = (name) => (name === "OK" || name === "WARNING" ? name : "ERROR");

async function groupsPage() {
  const { groups } = await api("GET", "/groups");
  render(h("h1", {}, "Consumer groups"),
    table([{ title: "Group" }, { title: "Status" }, { title: "Type" }, { title: "State" }, { title: "Protocol type" }, { title: "Members", num: 1 }],
      groups.map((g) => h("tr", {}, h("td", {}, h("a", { href: "#/groups/" + enc(g.group_id) }, g.group_id)),
        h("td", { class: "status" }, groupBadge(g.status)),
        h("td", {}, g.type), h("td", {}, g.state), h("td", {}, g.protocol_type ?? "–"), h("td", { class: "num" }, g.members))),
      { id: "groups" }));
}

async function groupPage(groupId) {
  const group = await api("GET", "/groups/" + enc(groupId));
  const topicsOfGroup = [...new Set(group.offsets.map((o) => o.topic))];
  const { topics } = await api("GET", "/topics");
  const topicSelect = h("select", { id: "reset-topic" }, [...new Set([...topicsOfGroup, ...topics.filter((t) => !t.internal).map((t) => t.name)])]
    .map((t) => h("option", { value: t }, t)));
  const partitions = h("input", { id: "reset-partitions", placeholder: "all, or 0,2" });
  const to = h("select", { id: "reset-to" }, ["earliest", "latest", "timestamp", "offset"].map((t) => h("option", { value: t }, t)));
  const value = h("input", { id: "reset-value", type: "number", placeholder: "offset or ms" });
  const preview = h("div", { id: "reset-preview" });
  const apply = h("button", { id: "reset-apply", class: "danger", type: "button", disabled: true }, "Apply");
  const body = (dryRun) => {
    const b = { topic: topicSelect.value, to: to.value, dry_run: dryRun };
    if (partitions.value.trim()) b.partitions = partitions.value.split(",").map((p) => Number(p.trim()));
    if (value.value !== "") b.value = Number(value.value);
    return b;
  };
  const showPlan = (result, applied) => preview.replaceChildren(
    applied ? notice("Offsets committed.") : h("p", { class: "muted" }, "Dry run: nothing changed yet."),
    table([{ title: "Topic" }, { title: "Partition", num: 1 }, { title: "Current offset", num: 1 }, { title: "New offset", num: 1 }],
      result.partitions.map((p) => h("tr", {}, h("td", {}, p.topic), h("td", { class: "num" }, p.partition),
        h("td", { class: "num" }, p.current_offset ?? "–"), h("td", { class: "num" }, p.new_offset)))));
  for (const el of [topicSelect, partitions, to, value]) el.addEventListener("change", () => { apply.disabled = true; });
  apply.addEventListener("click", async () => {
    try {
      showPlan(await api("POST", "/groups/" + enc(groupId) + "/offsets/reset", body(false)), true);
      apply.disabled = true;
      const again = await api("GET", "/groups/" + enc(groupId));
      document.getElementById("offsets").replaceWith(offsetsTable(again));
    } catch (err) { preview.replaceChildren(errorBox(err)); }
  });
  const form = h("form", {
    id: "reset",
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        showPlan(await api("POST", "/groups/" + enc(groupId) + "/offsets/reset", body(true)), false);
        apply.disabled = false;
      } catch (err) { preview.replaceChildren(errorBox(err)); apply.disabled = true; }
    },
  }, h("div", { class: "row" }, h("label", {}, "Topic ", topicSelect), h("label", {}, "Partitions ", partitions),
    h("label", {}, "To ", to), value, h("button", { type: "submit", id: "reset-dry-run" }, "Dry run"), apply), preview);
  // Lag trend: the group's total lag, re-read every OVERVIEW_POLL_MS while the page is open.
  const totalLag = (g) => g.offsets.reduce((n, o) => n + (o.lag ?? 0), 0);
  const lagHistory = [totalLag(group)];
  const lagCard = h("div", { class: "card", id: "lag-trend" });
  const drawLag = () => lagCard.replaceChildren(h("div", { class: "label" }, "Total lag (trend)"),
    h("div", { class: "value" }, String(lagHistory[lagHistory.length - 1])), spark(lagHistory));
  drawLag();
  const down = outage();
  pageTimer = setInterval(async () => {
    try {
      const again = await api("GET", "/groups/" + enc(groupId));
      lagHistory.push(totalLag(again));
      if (lagHistory.length > SPARK_POINTS) lagHistory.shift();
      drawLag();
      document.getElementById("offsets").replaceWith(offsetsTable(again));
      document.getElementById("group-status").replaceWith(statusCard(again));
      down.ended();
    } catch (err) { down.failed(err); }
  }, OVERVIEW_POLL_MS);
  render(
    h("h1", {}, "Group ", groupId),
    h("div", { class: "cards" }, card("State", group.state), card("Type", group.type), card("Protocol", group.protocol ?? "–"),
      card("Members", String(group.members.length)), statusCard(group), lagCard),
    h("h2", {}, "Members"),
    table([{ title: "Member" }, { title: "Client id" }, { title: "Host" }],
      group.members.map((m) => h("tr", {}, h("td", {}, m.member_id ?? "–"), h("td", {}, m.client_id ?? "–"), h("td", {}, m.host ?? m.client_host ?? "–"))),
      { id: "members" }),
    h("h2", {}, "Offsets and lag"),
    offsetsTable(group),
    h("h2", {}, "Reset offsets"),
    group.state === "Empty" || group.state === "Dead" ? null : h("p", { class: "muted" }, "Stop the group's consumers first: an active group refuses resets."),
    form);
}

function statusCard(group) {
  const c = card("Status", groupBadge(group.status));
  c.id = "group-status";
  return c;
}

function offsetsTable(group) {
  return table([{ title: "Topic" }, { title: "Partition", num: 1 }, { title: "Committed", num: 1 }, { title: "High watermark", num: 1 }, { title: "Lag", num: 1 }, { title: "Lag (s)", num: 1 }, { title: "Status" }],
    group.offsets.map((o) => h("tr", {}, h("td", {}, o.topic), h("td", { class: "num" }, o.partition), h("td", { class: "num" }, o.committed_offset),
      h("td", { class: "num" }, o.high_watermark ?? "–"), h("td", { class: "num lag" }, o.lag ?? "–"),
      h("td", { class: "num" }, o.lag_seconds === null || o.lag_seconds === undefined ? "–" : o.lag_seconds.toFixed(1)),
      h("td", { class: "status" }, o.status ? statusBadge(o.status, partitionLevel(o.status), o.status_reason) : statusBadge(null)))),
    { id: "offsets" });
}

// ---- schemas ---------------------------------------------------------------------------

async function schemasPage(subject, params) {
  let subjects;
  try { subjects = await call("GET", REGISTRY + "/subjects"); } catch (err) {
    render(h("h1", {}, "Schemas"), errorBox(err)); return;
  }
  const global = await call("GET", REGISTRY + "/config").catch(() => null);
  const list = h("ul", { id: "subjects" }, subjects.map((s) => h("li", {}, h("a", { href: "#/schemas/" + enc(s) }, s))));
  const head = [h("h1", {}, "Schemas"), h("p", { class: "muted" }, "Global compatibility: " + (global ? global.compatibilityLevel : "–")), list];
  if (!subject) { render(head); return; }
  const versions = await call("GET", REGISTRY + "/subjects/" + enc(subject) + "/versions");
  const level = await call("GET", REGISTRY + "/config/" + enc(subject) + "?defaultToGlobal=true").catch(() => null);
  const chosen = params.get("version") || String(versions[versions.length - 1]);
  const schema = await call("GET", REGISTRY + "/subjects/" + enc(subject) + "/versions/" + enc(chosen));
  const text = prettyJson(schema.schema) ?? schema.schema;
  // Diff: the chosen version against another, line by line.
  const other = h("select", { id: "diff-with" }, versions.filter((v) => String(v) !== chosen).map((v) => h("option", { value: String(v) }, String(v))));
  const diffOut = h("pre", { id: "schema-diff", hidden: true });
  const showDiff = async () => {
    const base = await call("GET", REGISTRY + "/subjects/" + enc(subject) + "/versions/" + enc(other.value));
    diffOut.replaceChildren(...lineDiff((prettyJson(base.schema) ?? base.schema).split("\n"), text.split("\n")));
    diffOut.hidden = false;
  };
  // Check a candidate schema against the subject's latest version, with the reasons.
  const candidate = h("textarea", { id: "candidate", placeholder: "a candidate schema" });
  const candidateType = h("select", { id: "candidate-type" }, ["AVRO", "JSON", "PROTOBUF"].map((t) => h("option", { value: t, selected: t === (schema.schemaType || "AVRO") }, t)));
  const verdict = h("div", { id: "candidate-verdict" });
  const check = async () => {
    try {
      const answer = await call("POST", REGISTRY + "/compatibility/subjects/" + enc(subject) + "/versions/latest?verbose=true",
        { schema: candidate.value, schemaType: candidateType.value });
      verdict.replaceChildren(answer.is_compatible ? notice("Compatible with the latest version.")
        : h("div", { class: "error" }, "Not compatible: ", (answer.messages || []).join("; ")));
    } catch (err) { verdict.replaceChildren(errorBox(err)); }
  };
  // Changing the subject's compatibility level is a registry write: it needs the CSRF header
  // when it goes through `shoal console`, and the registry's own authorization.
  const LEVELS = ["BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE"];
  const levelSelect = h("select", { id: "set-compatibility" }, LEVELS.map((l) =>
    h("option", { value: l, selected: level && level.compatibilityLevel === l }, l)));
  const levelStatus = h("span", { id: "compatibility-status" });
  const setLevel = async () => {
    try {
      const answer = await call("PUT", REGISTRY + "/config/" + enc(subject), { compatibility: levelSelect.value });
      document.getElementById("compatibility").textContent = answer.compatibility || levelSelect.value;
      levelStatus.replaceChildren(notice("Compatibility set to " + (answer.compatibility || levelSelect.value)));
    } catch (err) { levelStatus.replaceChildren(errorBox(err)); }
  };
  render(head,
    h("h2", {}, "Subject ", subject),
    h("p", {}, "Compatibility: ", h("strong", { id: "compatibility" }, level ? level.compatibilityLevel : "–"),
      " · type ", schema.schemaType || "AVRO", " · id ", schema.id),
    h("div", { class: "row" }, "Set compatibility ", levelSelect,
      h("button", { id: "apply-compatibility", class: "secondary", type: "button", onclick: setLevel }, "Set"), levelStatus),
    h("div", { class: "row" }, "Versions: ", versions.map((v) =>
      h("a", { href: "#/schemas/" + enc(subject) + "?version=" + v, class: String(v) === chosen ? "badge" : null }, String(v)))),
    h("pre", { id: "schema-text" }, text),
    versions.length > 1 ? h("div", { class: "row" }, "Diff with version ", other,
      h("button", { id: "show-diff", class: "secondary", type: "button", onclick: showDiff }, "Show diff")) : null,
    diffOut,
    h("h2", {}, "Check a candidate schema"),
    h("div", { class: "panel" }, h("div", { class: "row" }, h("label", {}, "Type ", candidateType),
      h("button", { id: "check-candidate", type: "button", onclick: check }, "Check compatibility")), candidate, verdict));
}

// Lines of ``after`` against ``before`` (longest common subsequence): spans "  ", "- ", "+ ".
function lineDiff(before, after) {
  const n = before.length, m = after.length;
  const common = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      common[i][j] = before[i] === after[j] ? common[i + 1][j + 1] + 1 : Math.max(common[i + 1][j], common[i][j + 1]);
    }
  }
  const out = [];
  let i = 0, j = 0;
  const line = (kind, text) => out.push(h("span", { class: "diff-" + kind }, { same: "  ", del: "- ", add: "+ " }[kind] + text + "\n"));
  while (i < n && j < m) {
    if (before[i] === after[j]) { line("same", before[i]); i++; j++; }
    else if (common[i + 1][j] >= common[i][j + 1]) line("del", before[i++]);
    else line("add", after[j++]);
  }
  while (i < n) line("del", before[i++]);
  while (j < m) line("add", after[j++]);
  return out;
}

// ---- dead-letter topics ----------------------------------------------------------------

const DLQ_COLUMNS = [
  ["Original topic", "original.topic"], ["Orig. partition", "original.partition"], ["Orig. offset", "original.offset"],
  ["Exception", "exception.type"], ["Message", "exception.message"], ["Attempts", "attempts"],
];

async function dlqPage(topicName, params) {
  const { topics } = await api("GET", "/topics");
  const dlqs = topics.filter((t) => t.name.endsWith(DLQ_SUFFIX));
  const head = [h("h1", {}, "Dead-letter topics"),
    table([{ title: "DLQ topic" }, { title: "Records", num: 1 }],
      dlqs.map((t) => h("tr", {}, h("td", {}, h("a", { href: "#/dlq/" + enc(t.name) }, t.name)), h("td", { class: "num" }, messageCount(t)))),
      { id: "dlqs" })];
  if (!topicName) { render(head); return; }
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (params.get("cursor")) query.set("cursor", params.get("cursor"));
  const page = await api("GET", "/topics/" + enc(topicName) + "/messages?" + query.toString());
  const status = h("div", { id: "redrive-status" });
  const selected = new Map();
  // Where records go: the topic the user names here, or else each record's origin topic (its
  // shoal.dlq.original.topic header). The API refuses internal topics, the DLQ itself and
  // topics that do not exist ("redrive_from" tells it this is a redrive); the page checks the
  // same first, so a batch with one bad target writes nothing.
  const redriveTo = h("input", { id: "redrive-to", placeholder: "to its original topic, or name one" });
  const known = new Map(topics.map((t) => [t.name, t]));
  const targetOf = (m) => redriveTo.value.trim() || header(m, DLQ_PREFIX + "original.topic");
  function refusedTarget(target) {
    const topic = known.get(target);
    if (target === topicName) return "cannot redrive " + topicName + " into itself";
    if (!topic) return "topic " + JSON.stringify(target) + " does not exist";
    if (topic.internal || target.startsWith("_")) return JSON.stringify(target) + " is an internal topic";
    // A header alone sends records only back to the DLQ's origin (<topic>.dlq -> <topic>).
    if (!redriveTo.value.trim() && !(topicName.endsWith(".dlq") && target === topicName.slice(0, -4)))
      return JSON.stringify(target) + " is not the origin of " + topicName + ": name the target";
    return null;
  }
  async function redrive(messages) {
    // not a shoal DLQ record (and no topic named): nothing says where it belongs
    const due = messages.filter((m) => targetOf(m) !== null);
    for (const m of due) {
      const refused = refusedTarget(targetOf(m));
      if (refused) throw new Error("Refused: " + refused + "; nothing of this batch was redriven.");
    }
    for (const m of due) {
      const headers = m.headers.filter((x) => !x.key.startsWith(DLQ_PREFIX));
      await api("POST", "/topics/" + enc(targetOf(m)) + "/messages", { key: m.key, value: m.value, headers, redrive_from: topicName,
        redrive_target_chosen: redriveTo.value.trim() !== "" });
    }
    return due.length;
  }
  const run = (messages) => async () => {
    try { status.replaceChildren(notice("Redrove " + (await redrive(messages)) + " record(s).")); }
    catch (err) { status.replaceChildren(errorBox(err)); }
  };
  const extra = [
    ...DLQ_COLUMNS.map(([, name]) => (m) => header(m, DLQ_PREFIX + name) ?? "–"),
    (m) => h("span", {}, h("input", { type: "checkbox", class: "pick", onchange: (e) => { if (e.target.checked) selected.set(m, true); else selected.delete(m); } }), " ",
      h("button", { class: "secondary redrive-one", type: "button", onclick: run([m]) }, "Redrive")),
  ];
  // Every record of the DLQ, page by page from the oldest, until each partition's end.
  const redriveAll = async () => {
    let done = 0;
    let cursor = null;
    // The DLQ's end when the redrive starts is where it stops: a record that fails again comes
    // back to this DLQ, and chasing the moving end would redrive it again and again.
    let stopAt = null;
    for (;;) {
      const q = new URLSearchParams({ limit: String(REDRIVE_PAGE_SIZE) });
      if (cursor) q.set("cursor", cursor);
      const batch = await api("GET", "/topics/" + enc(topicName) + "/messages?" + q.toString());
      stopAt = stopAt || batch.end_offsets;
      const due = batch.messages.filter((m) => m.offset < (stopAt[m.partition] ?? 0));
      done += await redrive(due);
      status.replaceChildren(notice("Redriving… " + done + " record(s) so far."));
      const positions = Object.fromEntries(batch.next_cursor.split(",").map((item) => item.split(":").map(Number)));
      const atEnd = Object.entries(stopAt).every(([p, end]) => (positions[p] ?? end) >= end);
      if (atEnd || batch.next_cursor === cursor) break;
      cursor = batch.next_cursor;
    }
    return done;
  };
  const nextParams = new URLSearchParams(params);
  nextParams.set("cursor", page.next_cursor);
  render(head,
    h("h2", {}, "Records in ", topicName),
    h("div", { class: "row" }, h("label", {}, "Redrive to ", redriveTo)),
    h("div", { class: "row" },
      h("button", { id: "redrive-selected", type: "button", onclick: () => run([...selected.keys()])() }, "Redrive selected"),
      h("button", { id: "redrive-page", class: "secondary", type: "button", onclick: run(page.messages) }, "Redrive all on this page"),
      h("button", { id: "redrive-all", class: "secondary", type: "button", onclick: async () => {
        try { status.replaceChildren(notice("Redrove " + (await redriveAll()) + " record(s).")); }
        catch (err) { status.replaceChildren(errorBox(err)); }
      } }, "Redrive all"),
      h("button", { id: "dlq-next", class: "secondary", type: "button", onclick: () => go(["dlq", topicName], nextParams) }, "Next page")),
    status,
    table([{ title: "Partition", num: 1 }, { title: "Offset", num: 1 }, { title: "Timestamp" }, { title: "Key" }, { title: "Value" }, { title: "Other headers" },
      ...DLQ_COLUMNS.map(([title]) => ({ title })), { title: "" }],
    messageRows(page.messages, extra, (x) => !x.key.startsWith(DLQ_PREFIX)), { id: "dlq-messages" }));
}

// ---- security (read-only) --------------------------------------------------------------

const ACL_RESOURCE_TYPES = ["TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID", "DELEGATION_TOKEN", "USER"];
const ACL_OPERATIONS = ["ALL", "READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE", "CREATE_TOKENS", "DESCRIBE_TOKENS"];
const SCRAM_MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-512"];

// ACLs and SCRAM users: listed, added and deleted through /api/v1 (Alter on the cluster, as
// CreateAcls, DeleteAcls and AlterUserScramCredentials need). `notice` is the last change's result.
async function securityPage(notice) {
  const [acls, users] = await Promise.all([
    api("GET", "/acls").catch((err) => err),
    api("GET", "/users").catch((err) => err),
  ]);
  const status = h("div", { id: "security-status" }, notice || null);
  const change = async (method, path, body, done) => {
    try {
      await api(method, path, body);
      await securityPage(notice_(done));
    } catch (err) { status.replaceChildren(errorBox(err)); }
  };
  const notice_ = (text) => h("div", { class: "notice" }, text);
  const select = (id, options) => h("select", { id }, options.map((o) => h("option", { value: o }, o)));
  const aclForm = (() => {
    const fields = {
      resource_type: select("acl-resource-type", ACL_RESOURCE_TYPES),
      resource_name: h("input", { id: "acl-resource-name", placeholder: "resource name (or *)" }),
      pattern_type: select("acl-pattern-type", ["LITERAL", "PREFIXED"]),
      principal: h("input", { id: "acl-principal", placeholder: "User:alice" }),
      host: h("input", { id: "acl-host", value: "*" }),
      operation: select("acl-operation", ACL_OPERATIONS),
      permission_type: select("acl-permission", ["ALLOW", "DENY"]),
    };
    return h("form", {
      id: "add-acl",
      onsubmit: (e) => {
        e.preventDefault();
        const body = Object.fromEntries(Object.entries(fields).map(([k, el]) => [k, el.value]));
        change("POST", "/acls", body, "Added the ACL.");
      },
    }, h("div", { class: "row" }, Object.values(fields), h("button", { type: "submit" }, "Add ACL")));
  })();
  const aclPart = acls instanceof Error ? errorBox(acls)
    : acls.authorizer === false ? h("p", { class: "muted", id: "no-authorizer" }, "No authorizer is configured: every principal may do everything.")
    : acls.authorizer === null ? h("p", { class: "muted", id: "no-acls" }, "No ACLs (whether an authorizer runs is not visible through this cluster's client API).")
      : table(["Resource type", "Resource", "Pattern", "Principal", "Host", "Operation", "Permission", ""].map((title) => ({ title })),
        acls.acls.map((a) => h("tr", {}, [a.resource_type, a.resource_name, a.pattern_type, a.principal, a.host, a.operation, a.permission_type].map((v) => h("td", {}, v)),
          h("td", {}, h("button", { class: "danger delete-acl", type: "button", onclick: () => change("DELETE", "/acls", a, "Deleted the ACL.") }, "Delete")))),
        { id: "acls" });
  const userForm = (() => {
    const user = h("input", { id: "user-name", placeholder: "user" });
    const mechanism = select("user-mechanism", SCRAM_MECHANISMS);
    const password = h("input", { id: "user-password", type: "password", placeholder: "password", autocomplete: "new-password" });
    const iterations = h("input", { id: "user-iterations", type: "number", min: 4096, max: 16384, value: "8192" });
    return h("form", {
      id: "set-user",
      onsubmit: (e) => {
        e.preventDefault();
        const body = { mechanism: mechanism.value, password: password.value, iterations: Number(iterations.value) };
        change("PUT", "/users/" + enc(user.value), body, "Set " + mechanism.value + " for " + user.value + ".");
      },
    }, h("div", { class: "row" }, user, mechanism, password, h("label", {}, "Iterations ", iterations), h("button", { type: "submit" }, "Set credential")));
  })();
  const userPart = users instanceof Error ? errorBox(users)
    : table([{ title: "User" }, { title: "SCRAM mechanisms (iterations)" }],
      users.users.map((u) => h("tr", {}, h("td", {}, u.user), h("td", {}, u.mechanisms.map((m) => h("span", { class: "row" }, m.mechanism + " (" + m.iterations + ") ",
        h("button", { class: "danger delete-credential", type: "button", "data-mechanism": m.mechanism,
          onclick: () => change("DELETE", "/users/" + enc(u.user) + "?mechanism=" + enc(m.mechanism), undefined, "Deleted " + m.mechanism + " of " + u.user + ".") }, "Delete")))))),
      { id: "users" });
  render(h("h1", {}, "Security"), status,
    h("h2", {}, "ACLs"), aclPart, aclForm, h("h2", {}, "SCRAM users"), userPart, userForm);
}

// ---- router ----------------------------------------------------------------------------

async function route() {
  if (pageTimer !== null) { clearInterval(pageTimer); pageTimer = null; }
  newRouteGeneration();
  const { parts, params } = parseHash();
  decodeWithRegistry = params.get("decode") !== "0";
  const [page, arg] = parts;
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.page === (page || "overview"));
  }
  const pages = {
    undefined: () => overviewPage(),
    overview: () => overviewPage(),
    topics: () => (arg === undefined ? topicsPage(params) : topicPage(arg)),
    messages: () => messagesPage(arg, params),
    produce: () => producePage(arg),
    groups: () => (arg === undefined ? groupsPage() : groupPage(arg)),
    schemas: () => schemasPage(arg, params),
    dlq: () => dlqPage(arg, params),
    security: () => securityPage(),
  };
  const show = pages[page] || (() => render(h("h1", {}, "No such page"), h("a", { href: "#/" }, "Overview")));
  document.body.dataset.loading = "true";
  try { await show(); } catch (err) { render(h("h1", {}, "Something went wrong"), errorBox(err)); }
  document.body.dataset.loading = "false";
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);
