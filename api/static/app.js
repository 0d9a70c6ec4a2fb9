// llmprof dashboard: vanilla JS + SVG over the read-only JSON API. No build step,
// nothing fetched but this server's /api. Untrusted text (prompts, responses,
// model names) only ever goes through textContent / setAttribute.

// ---- settings -------------------------------------------------------------------
const params = new URLSearchParams(location.search);
const clampInt = (v, lo, hi, dflt) => {
  const n = Number.parseInt(v, 10);
  return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : dflt;
};
const POLL_MS = clampInt(params.get("poll"), 200, 600000, 5000);
const PAGE = clampInt(params.get("page"), 1, 500, 50);
const SCAN_PAGE = 200; // page size while scanning with a filter the API does not have
const SCAN_BUDGET = 2000; // calls scanned per "load more" with such a filter
const TOKEN_KEY = "llmprof.token";
const BODY_CAP = 200000; // characters of a body pretty-printed before "show all"

const ORDER = [
  "system prompt", "tool schemas", "user input", "history (assistant)", "thinking",
  "tool calls", "tool results", "attachments", "server-side context", "unattributed",
];
const COLORS = {
  "system prompt": "#6a9bd8", "tool schemas": "#b08ce0", "user input": "#74bf6a",
  "history (assistant)": "#66c2bc", thinking: "#f5a3b0", "tool calls": "#f4a259",
  "tool results": "#e9c953", attachments: "#c59ab8", "server-side context": "#a9adb3",
  unattributed: "#c4bdb6", context: "#9ca3ad",
};

// ---- formatting -----------------------------------------------------------------
const nf = new Intl.NumberFormat("en-US");
const pad = (n) => String(n).padStart(2, "0");
const fmt = {
  int: (v) => (v == null ? "—" : nf.format(Math.round(v))),
  usd(v) {
    if (v == null || !Number.isFinite(v)) return "—";
    if (v === 0) return "$0.00";
    const a = Math.abs(v);
    const sign = v < 0 ? "-" : "";
    if (a < 0.0000005) return `${sign}<$0.000001`;
    if (a >= 1) return `${sign}$${a.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
    // sub-dollar amounts: 4 decimals from a cent, 6 below, trailing zeros trimmed
    return `${sign}$${a.toFixed(a >= 0.01 ? 4 : 6).replace(/(\.\d\d\d*?)0+$/, "$1")}`;
  },
  pct: (frac) => (frac == null || !Number.isFinite(frac) ? "—" : `${(frac * 100).toFixed(1)}%`),
  ms: (v) => (v == null ? "—" : v < 1000 ? `${Math.round(v)} ms` : `${(v / 1000).toFixed(2)} s`),
  time(ts) {
    return ts == null ? "—" : `${fmt.date(ts)} ${fmt.clock(ts * 1000)}`;
  },
  date(ts) {
    const d = new Date(ts * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  },
  clock(ts) {
    const d = new Date(ts);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  },
  compact(v) {
    const a = Math.abs(v);
    if (a >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
    if (a >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
    return String(+v.toFixed(2));
  },
  bytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1048576) return `${(n / 1024).toFixed(1)} KB`;
    return `${(n / 1048576).toFixed(1)} MB`;
  },
  duration(s) {
    if (s == null) return "—";
    if (s < 60) return `${Math.round(s)} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
    if (s < 172800) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`;
  },
};

// ---- DOM helpers ----------------------------------------------------------------
const SVGNS = "http://www.w3.org/2000/svg";
function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "text") el.textContent = v;
    else if (k === "class") el.setAttribute("class", v);
    else if (k === "style") for (const [p, val] of Object.entries(v)) el.style.setProperty(p, val);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}
function appendAll(el, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k == null || k === false) continue;
    el.append(k instanceof Node ? k : String(k));
  }
  return el;
}
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  return appendAll(el, kids);
}
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVGNS, tag);
  setAttrs(el, attrs);
  return appendAll(el, kids);
}
const $ = (sel, root = document) => root.querySelector(sel);
const tile = (key, label, value, cls) =>
  h("div", { class: `tile ${cls || ""}`, "data-k": key }, h("dt", { text: label }), h("dd", { text: value }));
const num = (text) => h("td", { class: "num", text });
const topComponent = (comps) => {
  let best = null;
  let total = 0;
  for (const [k, v] of Object.entries(comps || {})) {
    total += v;
    if (!best || v > best[1]) best = [k, v];
  }
  return best ? { name: best[0], share: total ? best[1] / total : 0 } : null;
};
const swatch = (color) => h("span", { class: "swatch", style: { background: color } });

// Replace a container's children only when its data changed, keeping keyboard
// focus on the element with the same data-key (so polling never steals focus).
class Section {
  constructor(el) {
    this.el = el;
    this.sig = null;
  }
  show(data, render) {
    const sig = JSON.stringify(data);
    if (sig === this.sig) return false;
    this.sig = sig;
    const active = document.activeElement;
    const key = active && this.el.contains(active) ? active.getAttribute("data-key") : null;
    render(this.el, data);
    if (key) {
      const again = this.el.querySelector(`[data-key="${CSS.escape(key)}"]`);
      if (again) again.focus({ preventScroll: true });
    }
    changed();
    return true;
  }
}

// ---- API ------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}
function nextLink(header) {
  const m = header && header.match(/<([^>]+)>\s*;\s*rel="?next"?/);
  return m ? m[1] : null;
}
async function api(path) {
  const headers = { Accept: "application/json" };
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  let r;
  try {
    r = await fetch(path, { headers, cache: "no-store" });
  } catch {
    throw new ApiError(0, "the API is unreachable");
  }
  if (r.status === 401) {
    askToken(token ? "That token was refused." : "");
    throw new ApiError(401, "the API needs its token");
  }
  if (!r.ok) {
    let message = r.statusText;
    try {
      message = (await r.json()).error.message;
    } catch {
      /* not our error shape */
    }
    throw new ApiError(r.status, message);
  }
  return { data: await r.json(), next: nextLink(r.headers.get("Link")) };
}
const get = async (path) => (await api(path)).data;

// Polling is cheap: one indexed row says whether anything was recorded; the
// aggregates are re-read only then, or once a minute (day boundaries, pruning).
const REFRESH_MS = 60000;
class Watch {
  constructor() {
    this.head = null;
    this.at = 0;
  }
  async check(force) {
    const rows = await get("/api/traces?limit=1");
    const head = rows.length ? rows[0].id : 0;
    const due = force || head !== this.head || Date.now() - this.at >= Math.max(REFRESH_MS, POLL_MS);
    return due ? head : null;
  }
  mark(head) {
    this.head = head;
    this.at = Date.now();
  }
}

// ---- status line, token, tooltip ------------------------------------------------
let lastChange = Date.now();
function changed() {
  lastChange = Date.now();
}
function setStatus(ok, text) {
  const el = $("#status");
  const msg = ok ? `Live · updated ${fmt.clock(lastChange)}` : text;
  el.className = `status ${ok ? "" : "down"}`;
  if (el.textContent !== msg) el.textContent = msg;
}
function reportError(e) {
  if (e instanceof ApiError && e.status === 401) setStatus(false, "Waiting for the API token");
  else if (e instanceof ApiError && e.status === 0) setStatus(false, "Offline: the API is unreachable, retrying");
  else if (e instanceof ApiError) setStatus(false, `API error ${e.status}: ${e.message}`);
  else {
    console.error(e);
    setStatus(false, `Dashboard error: ${e.message}`);
  }
}

function askToken(message) {
  const dlg = $("#token-dialog");
  const err = $("#token-error");
  err.hidden = !message;
  err.textContent = message || "";
  if (!dlg.open) {
    $("#token-input").value = "";
    dlg.showModal();
  }
}
function setupToken() {
  const dlg = $("#token-dialog");
  $("#token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = $("#token-input").value.trim();
    if (!value) return;
    localStorage.setItem(TOKEN_KEY, value);
    dlg.close();
    restart();
  });
  $("#token-forget").addEventListener("click", () => {
    localStorage.removeItem(TOKEN_KEY);
    $("#token-input").value = "";
  });
  $("#token-cancel").addEventListener("click", () => dlg.close());
  $("#token-btn").addEventListener("click", () => askToken(""));
  $("#help-btn").addEventListener("click", () => $("#help-dialog").showModal());
}

const tipEl = () => $("#tip");
function showTip(lines, x, y) {
  const tip = tipEl();
  tip.replaceChildren(...lines.map((l, i) => (i === 0 ? h("b", { text: l }) : h("div", { text: l }))));
  tip.hidden = false;
  const w = tip.offsetWidth;
  const hgt = tip.offsetHeight;
  const left = Math.min(window.innerWidth - w - 8, x + 14);
  const top = y + hgt + 20 > window.innerHeight ? y - hgt - 12 : y + 16;
  tip.style.setProperty("left", `${Math.max(4, left)}px`);
  tip.style.setProperty("top", `${Math.max(4, top)}px`);
}
function hideTip() {
  tipEl().hidden = true;
}

// ---- routing --------------------------------------------------------------------
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const q = raw.indexOf("?");
  const path = q < 0 ? raw : raw.slice(0, q);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { name: parts[0] || "calls", arg: parts[1] ?? null, query: new URLSearchParams(q < 0 ? "" : raw.slice(q + 1)) };
}
function hashFor(name, arg, query) {
  const qs = query && [...query].length ? `?${query}` : "";
  return `#/${name}${arg != null ? `/${encodeURIComponent(arg)}` : ""}${qs}`;
}
function go(name, arg, query) {
  const target = hashFor(name, arg, query);
  if (location.hash !== target) location.hash = target;
}

// ---- charts ---------------------------------------------------------------------
// A bar chart (optionally stacked, optionally with a line) with a keyboard-movable
// active bar and a live readout. `items` are plotted left to right.
function barChart(host, opts) {
  const { items, value, stacks, line, label, readout, yFormat, height = 200, title } = opts;
  const width = Math.max(320, host.clientWidth || 800);
  const m = { l: 64, r: 12, t: 10, b: 24 };
  const iw = width - m.l - m.r;
  const ih = height - m.t - m.b;
  const vals = items.map(value);
  const lineVals = line ? items.map(line) : [];
  const max = niceMax(Math.max(0, ...vals, ...lineVals));
  const band = iw / Math.max(1, items.length);
  const bw = Math.max(1, Math.min(48, band * 0.72));
  const y = (v) => m.t + ih - (v / max) * ih;
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`, height, tabindex: 0, role: "img",
    "aria-label": `${title}: use the left and right arrow keys to read each bar`,
    "data-key": `chart-${title}`,
  });
  for (const f of [0, 0.5, 1]) {
    const gy = y(max * f);
    svg.append(s("line", { class: "gridline", x1: m.l, x2: width - m.r, y1: gy, y2: gy }));
    svg.append(s("text", { class: "axis", x: m.l - 6, y: gy + 4, "text-anchor": "end", text: yFormat(max * f) }));
  }
  const every = Math.max(1, Math.ceil(items.length / Math.floor(iw / 56)));
  const groups = items.map((it, i) => {
    const cx = m.l + band * i + band / 2;
    const g = s("g", { class: stacks ? "stack" : "", "data-i": i });
    if (stacks) {
      let acc = 0;
      for (const part of stacks(it)) {
        if (part.value <= 0) continue;
        const y0 = y(acc + part.value);
        g.append(s("rect", { x: cx - bw / 2, y: y0, width: bw, height: Math.max(0.5, y(acc) - y0), fill: part.color }));
        acc += part.value;
      }
    } else {
      const v = vals[i];
      g.append(s("rect", { class: "bar", x: cx - bw / 2, y: y(v), width: bw, height: Math.max(v > 0 ? 1 : 0, y(0) - y(v)) }));
    }
    g.append(s("rect", { class: "hit", x: m.l + band * i, y: m.t, width: band, height: ih }));
    if ((items.length - 1 - i) % every === 0) {
      svg.append(s("text", { class: "axis", x: cx, y: height - 6, "text-anchor": "middle", text: label(it) }));
    }
    svg.append(g);
    return g;
  });
  if (line && items.length) {
    const pts = items.map((it, i) => `${m.l + band * i + band / 2},${y(lineVals[i])}`);
    svg.append(s("polyline", { class: "line", points: pts.join(" ") }));
    items.forEach((it, i) => svg.append(s("circle", { class: "dot", cx: m.l + band * i + band / 2, cy: y(lineVals[i]), r: 2.5 })));
  }
  const out = h("p", { class: "readout", "aria-live": "polite" });
  let active = opts.active ?? items.length - 1;
  const select = (i) => {
    if (!items.length) return;
    active = Math.max(0, Math.min(items.length - 1, i));
    groups.forEach((g, j) => g.classList.toggle("active", j === active));
    for (const r of svg.querySelectorAll("rect.bar")) r.classList.remove("active");
    const bar = groups[active].querySelector("rect.bar");
    if (bar) bar.classList.add("active");
    out.textContent = readout(items[active], active);
    opts.onSelect?.(active);
  };
  svg.addEventListener("mousemove", (ev) => {
    const g = ev.target.closest("g[data-i]");
    if (g) select(Number(g.dataset.i));
  });
  svg.addEventListener("click", (ev) => {
    const g = ev.target.closest("g[data-i]");
    if (g && opts.onOpen) opts.onOpen(items[Number(g.dataset.i)]);
  });
  svg.addEventListener("keydown", (ev) => {
    const moves = { ArrowLeft: -1, ArrowRight: 1, h: -1, l: 1 };
    if (ev.key in moves) select(active + moves[ev.key]);
    else if (ev.key === "Home") select(0);
    else if (ev.key === "End") select(items.length - 1);
    else if (ev.key === "Enter" && opts.onOpen) opts.onOpen(items[active]);
    else return;
    ev.preventDefault();
    ev.stopPropagation();
  });
  host.replaceChildren(svg, out);
  select(active);
  return { select };
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((c) => c >= v * (1 - 1e-9));
}

// ---- flame graph ----------------------------------------------------------------
// An icicle of the call's `detail` tree: click (or Enter) zooms into a part, Esc
// or an ancestor zooms out; hover (or focus) shows tokens, share and cost.
class Flame {
  constructor(host, root, inputCost) {
    this.host = host;
    this.inputCost = inputCost;
    this.root = this.prepare(root, null, 0, "");
    this.focus = this.root;
    this.cursor = this.root;
    this.bar = h("div", { class: "flame-bar" });
    this.canvas = h("div", { class: "flame" });
    this.table = h("table", { class: "grid parts" });
    this.note = h("p", { class: "note" });
    host.replaceChildren(this.bar, this.canvas, this.table, this.note);
    this.renderTable();
    this.render();
    this.resize = new ResizeObserver(() => {
      if (this.canvas.clientWidth !== this.width) this.render(false);
    });
    this.resize.observe(this.canvas);
  }
  prepare(node, parent, depth, prefix) {
    const path = prefix ? `${prefix}/${node.name}` : node.name;
    const n = { name: String(node.name), tokens: Math.max(0, Number(node.tokens) || 0), parent, depth, path, children: [] };
    n.color = depth === 0 ? COLORS.context : depth === 1 ? COLORS[n.name] || "#a7b0ba" : null;
    n.children = (node.children || []).filter((c) => c && c.tokens > 0).map((c) => this.prepare(c, n, depth + 1, depth === 0 ? "" : path));
    n.children.forEach((c, i) => {
      if (!c.color) c.color = shade(n.color, i);
    });
    this.maxDepth = Math.max(this.maxDepth || 0, depth);
    return n;
  }
  info(n) {
    const total = this.root.tokens || 1;
    const share = n.tokens / total;
    const lines = [n.depth ? n.path : "context (all input)", `${fmt.int(n.tokens)} tokens`, `${fmt.pct(share)} of the context`];
    if (n.parent && n.parent !== this.root) lines.push(`${fmt.pct(n.tokens / (n.parent.tokens || 1))} of ${n.parent.name}`);
    lines.push(this.inputCost == null ? "cost: unpriced" : `${fmt.usd(this.inputCost * share)} of the input cost`);
    return lines;
  }
  ancestors(n) {
    const out = [];
    for (let p = n.parent; p; p = p.parent) out.unshift(p);
    return out;
  }
  zoom(n, cursor = n) {
    this.focus = n;
    this.cursor = cursor;
    hideTip();
    this.render(true);
    this.highlightTable();
  }
  zoomOut() {
    // zoom out one level, keeping the keyboard on the part we came from
    if (!this.focus.parent) return false;
    this.zoom(this.focus.parent, this.focus);
    return true;
  }
  render(keepFocus) {
    const W = Math.max(300, this.canvas.clientWidth || 700);
    this.width = this.canvas.clientWidth;
    const rowH = 26;
    const rows = this.maxDepth + 1;
    const svg = s("svg", {
      viewBox: `0 0 ${W} ${rows * (rowH + 2)}`, height: rows * (rowH + 2), role: "tree",
      "aria-label": "Context flame graph: Enter zooms into a part, Escape zooms out",
    });
    this.nodes = [];
    const draw = (n, x, w, cls) => {
      const g = s("g", {
        class: `fg-node ${cls}`, role: "treeitem", tabindex: n === this.cursor ? 0 : -1,
        "data-path": n.path, "data-w": w.toFixed(1), "aria-label": this.info(n).join(", "),
        "aria-expanded": n.children.length ? String(n === this.focus || this.ancestors(this.focus).includes(n)) : null,
      });
      g.append(s("rect", { x, y: n.depth * (rowH + 2), width: Math.max(0.5, w), height: rowH, rx: 3, fill: n.color }));
      const label = n.depth === 0 ? `context · ${fmt.int(n.tokens)} tokens` : `${n.name} · ${fmt.int(n.tokens)}`;
      const fit = Math.floor((w - 10) / 7);
      if (fit >= 3) {
        const text = label.length <= fit ? label : n.name.length <= fit ? n.name : `${n.name.slice(0, fit - 1)}…`;
        g.append(s("text", { x: x + 5, y: n.depth * (rowH + 2) + 17, text }));
      }
      g.__node = n;
      this.nodes.push({ n, g, x, w });
      svg.append(g);
    };
    for (const a of this.ancestors(this.focus)) draw(a, 0, W, "anc");
    const walk = (n, x, w) => {
      draw(n, x, w, n === this.focus ? "focus" : "");
      let cx = x;
      for (const c of n.children) {
        const cw = n.tokens ? (w * c.tokens) / n.tokens : 0;
        if (cw >= 0.5) walk(c, cx, cw);
        cx += cw;
      }
    };
    walk(this.focus, 0, W);
    svg.addEventListener("click", (ev) => {
      const g = ev.target.closest(".fg-node");
      if (g) this.activate(g.__node);
    });
    svg.addEventListener("mousemove", (ev) => {
      const g = ev.target.closest(".fg-node");
      if (g) showTip(this.info(g.__node), ev.clientX, ev.clientY);
      else hideTip();
    });
    svg.addEventListener("mouseleave", hideTip);
    svg.addEventListener("focusin", (ev) => {
      const g = ev.target.closest(".fg-node");
      if (!g) return;
      this.cursor = g.__node;
      const r = g.getBoundingClientRect();
      showTip(this.info(g.__node), r.left + Math.min(r.width / 2, 60), r.bottom - 10);
    });
    svg.addEventListener("focusout", hideTip);
    svg.addEventListener("keydown", (ev) => this.key(ev));
    this.canvas.replaceChildren(svg);
    this.renderBar();
    if (keepFocus) this.focusNode(this.cursor);
  }
  activate(n) {
    if (n === this.focus) {
      if (!this.zoomOut()) this.focusNode(n);
    } else this.zoom(n);
  }
  focusNode(n) {
    const hit = this.nodes.find((e) => e.n === n);
    if (!hit) return;
    for (const e of this.nodes) e.g.setAttribute("tabindex", e.n === n ? 0 : -1);
    this.cursor = n;
    hit.g.focus({ preventScroll: true });
  }
  key(ev) {
    const cur = this.cursor;
    const visible = this.nodes.map((e) => e.n);
    const row = visible.filter((n) => n.depth === cur.depth);
    const i = row.indexOf(cur);
    let next = null;
    if (ev.key === "ArrowRight") next = row[i + 1];
    else if (ev.key === "ArrowLeft") next = row[i - 1];
    else if (ev.key === "ArrowUp") next = cur.parent;
    else if (ev.key === "ArrowDown") next = cur.children.find((c) => visible.includes(c));
    else if (ev.key === "Enter" || ev.key === " ") {
      this.activate(cur);
      ev.preventDefault();
      return;
    } else if (ev.key === "Escape") {
      if (this.zoomOut()) {
        ev.preventDefault();
        ev.stopPropagation();
      }
      return;
    } else return;
    ev.preventDefault();
    if (next && visible.includes(next)) this.focusNode(next);
  }
  renderBar() {
    const crumbs = h("nav", { class: "crumbs", "aria-label": "Zoom" });
    const chain = [...this.ancestors(this.focus), this.focus];
    chain.forEach((n, i) => {
      if (i) crumbs.append(h("span", { class: "sep", "aria-hidden": "true", text: "›" }));
      crumbs.append(h("button", {
        type: "button", text: n.depth ? n.name : "context", "aria-current": n === this.focus ? "true" : null,
        onclick: () => this.zoom(n),
      }));
    });
    const reset = h("button", { type: "button", class: "ghost reset", text: "Reset zoom", disabled: this.focus === this.root, onclick: () => this.zoom(this.root) });
    this.bar.replaceChildren(crumbs, reset);
  }
  renderTable() {
    const total = this.root.tokens || 1;
    const rows = [];
    const add = (n) => {
      const share = n.tokens / total;
      rows.push(h("tr", { class: n.depth > 1 ? "child" : "", "data-path": n.path },
        h("td", {}, swatch(n.color), h("button", { type: "button", class: "linkish", text: n.depth > 1 ? `↳ ${n.name}` : n.name, onclick: () => this.zoom(n), "aria-label": `Zoom into ${n.path}` })),
        num(fmt.int(n.tokens)), num(fmt.pct(share)), num(this.inputCost == null ? "—" : fmt.usd(this.inputCost * share))));
      n.children.forEach(add);
    };
    this.root.children.forEach(add);
    this.table.replaceChildren(
      h("thead", {}, h("tr", {}, h("th", { text: "Part" }), h("th", { class: "num", text: "Tokens" }), h("th", { class: "num", text: "Share" }), h("th", { class: "num", text: "Cost" }))),
      h("tbody", {}, rows),
    );
  }
  highlightTable() {
    for (const tr of this.table.querySelectorAll("tbody tr")) {
      const p = tr.getAttribute("data-path");
      tr.classList.toggle("zoomed", this.focus !== this.root && (p === this.focus.path || p.startsWith(`${this.focus.path}/`)));
    }
  }
  destroy() {
    this.resize.disconnect();
  }
}
function shade(hex, i) {
  const c = Number.parseInt((hex || "#a7b0ba").slice(1), 16);
  const mix = 0.22 + 0.14 * (i % 4);
  const ch = (shift) => Math.round(((c >> shift) & 255) * (1 - mix) + 255 * mix);
  return `rgb(${ch(16)}, ${ch(8)}, ${ch(0)})`;
}

// ---- JSON pretty-printing ---------------------------------------------------------
const JSON_TOKEN = /("(?:\\u[0-9a-fA-F]{4}|\\[^u]|[^\\"])*")(\s*:)?|\b(?:true|false|null)\b|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
function jsonBlock(value, summary, open) {
  const text = JSON.stringify(value, null, 2) ?? "null";
  const pre = h("pre", { class: "json", tabindex: 0 });
  const fill = (all) => {
    const shown = all || text.length <= BODY_CAP ? text : text.slice(0, BODY_CAP);
    pre.replaceChildren();
    let last = 0;
    const frag = document.createDocumentFragment();
    for (const m of shown.matchAll(JSON_TOKEN)) {
      if (m.index > last) frag.append(shown.slice(last, m.index));
      const cls = m[1] ? (m[2] ? "k" : "s") : /^[tfn]/.test(m[0]) ? "l" : "n";
      frag.append(h("span", { class: cls, text: m[1] && m[2] ? m[1] : m[0] }));
      if (m[1] && m[2]) frag.append(m[2]);
      last = m.index + m[0].length;
    }
    frag.append(shown.slice(last));
    pre.append(frag);
    if (shown.length < text.length) {
      pre.append(h("div", {}, h("button", { type: "button", class: "ghost", text: `Show all (${fmt.bytes(text.length)})`, onclick: () => fill(true) })));
    }
  };
  const det = h("details", { class: "body", open: open || null },
    h("summary", {}, summary, " ", h("span", { class: "muted", text: `(${fmt.bytes(text.length)})` })), pre);
  if (open) fill(false);
  else det.addEventListener("toggle", () => det.open && !pre.firstChild && fill(false), { once: false });
  return det;
}

// ---- Calls view -----------------------------------------------------------------
const FILTERS = ["provider", "model", "template", "run"];
const SORTS = { newest: "Newest first", cost: "Cost (highest)", tokens: "Tokens (most)" };

class CallsView {
  constructor(main) {
    this.items = [];
    this.next = null;
    this.done = false;
    this.rows = new Map();
    this.fresh = new Set();
    this.details = new Map();
    this.filterKey = null;
    this.filter = {};
    this.sort = "newest";
    this.detailId = null;
    this.flame = null;
    this.selects = {};
    const form = h("form", { class: "filters", role: "search", "aria-label": "Filter calls", onsubmit: (ev) => ev.preventDefault() });
    const mk = (key, label, all) => {
      const el = h("select", { id: `f-${key}`, "data-filter": key, onchange: () => this.applyForm() }, h("option", { value: "", text: all }));
      this.selects[key] = el;
      form.append(h("label", { for: `f-${key}` }, label, el));
    };
    mk("provider", "Provider", "All providers");
    mk("model", "Model", "All models");
    mk("template", "Template", "All templates");
    this.runInput = h("input", { id: "f-run", list: "runs-list", placeholder: "any run", "data-filter": "run", autocomplete: "off", onchange: () => this.applyForm() });
    this.runList = h("datalist", { id: "runs-list" });
    form.append(h("label", { for: "f-run" }, "Run", this.runInput, this.runList));
    this.sortSel = h("select", { id: "f-sort", onchange: () => this.applyForm() }, Object.entries(SORTS).map(([v, t]) => h("option", { value: v, text: t })));
    form.append(h("label", { for: "f-sort" }, "Sort", this.sortSel));
    form.append(h("button", { type: "button", class: "ghost", text: "Clear", onclick: () => go("calls", this.detailId, new URLSearchParams()) }));
    this.note = h("p", { class: "scan-note", "aria-live": "polite" });
    this.tbody = h("tbody", { onkeydown: (ev) => this.rowKey(ev), onclick: (ev) => this.rowClick(ev) });
    const table = h("table", { class: "grid calls-table", "aria-label": "Recorded calls" },
      h("thead", {}, h("tr", {},
        h("th", { text: "Time" }), h("th", { text: "Model" }), h("th", { class: "num", text: "In" }),
        h("th", { class: "num", text: "Out" }), h("th", { class: "num", text: "Cost" }),
        h("th", { class: "num col-lat", text: "Latency" }), h("th", { class: "col-top", text: "Top component" }))),
      this.tbody);
    this.empty = h("div", { class: "empty", hidden: true });
    this.moreBtn = h("button", { type: "button", class: "ghost", text: "Load more", onclick: () => this.loadMore() });
    this.more = h("div", { class: "more" }, this.moreBtn);
    this.detailPane = h("section", { class: "detail-pane panel", "aria-label": "Call detail" });
    this.root = h("div", { class: "calls no-detail" },
      h("section", { class: "list-pane panel", "aria-label": "Calls" }, form, this.note, table, this.empty, this.more),
      this.detailPane);
    main.replaceChildren(this.root);
    this.optionsSig = null;
    this.watch = new Watch();
    this.loadOptions().catch(reportError);
  }

  // -- filters
  applyForm() {
    const q = new URLSearchParams();
    for (const k of ["provider", "model", "template"]) if (this.selects[k].value) q.set(k, this.selects[k].value);
    if (this.runInput.value.trim()) q.set("run", this.runInput.value.trim());
    if (this.sortSel.value !== "newest") q.set("sort", this.sortSel.value);
    go("calls", this.detailId, q);
  }
  syncForm() {
    for (const k of ["provider", "model", "template"]) {
      const sel = this.selects[k];
      const v = this.filter[k] || "";
      if (v && ![...sel.options].some((o) => o.value === v)) sel.append(h("option", { value: v, text: v }));
      sel.value = v;
    }
    if (document.activeElement !== this.runInput) this.runInput.value = this.filter.run || "";
    this.sortSel.value = this.sort;
  }
  async loadOptions() {
    const [models, routes, runs] = await Promise.all([get("/api/summary/models"), get("/api/routes?limit=100"), get("/api/sessions?limit=100")]);
    const sig = JSON.stringify([models, routes.map((r) => [r.route, r.label]), runs.map((r) => r.session_id)]);
    if (sig === this.optionsSig) return;
    this.optionsSig = sig;
    const fill = (sel, all, entries) => {
      const keep = sel.value;
      sel.replaceChildren(h("option", { value: "", text: all }), ...entries.map(([v, t]) => h("option", { value: v, text: t })));
      if (keep && !entries.some(([v]) => v === keep)) sel.append(h("option", { value: keep, text: keep }));
      sel.value = keep;
    };
    const providers = [...new Set(models.map((m) => m.provider).filter(Boolean))].sort();
    fill(this.selects.provider, "All providers", providers.map((p) => [p, p]));
    const names = [...new Set(models.map((m) => m.model).filter(Boolean))].sort();
    fill(this.selects.model, "All models", names.map((m) => [m, m]));
    fill(this.selects.template, "All templates", routes.map((r) => [r.route, r.label || r.route]));
    this.runList.replaceChildren(...runs.map((r) => h("option", { value: r.session_id })));
  }
  matches(t) {
    const f = this.filter;
    if (f.provider && t.provider !== undefined && t.provider !== f.provider) return false;
    if (f.model && t.model !== f.model) return false;
    if (f.template && t.route !== undefined && t.route !== f.template) return false;
    return true;
  }
  get scanning() {
    return Boolean(this.filter.provider || this.filter.model || this.filter.template) && !this.filter.run;
  }

  // -- route updates
  async update(r) {
    const filter = {};
    for (const k of FILTERS) if (r.query.get(k)) filter[k] = r.query.get(k);
    const key = JSON.stringify(filter);
    this.sort = SORTS[r.query.get("sort")] ? r.query.get("sort") : "newest";
    const id = r.arg != null && /^\d+$/.test(r.arg) ? Number(r.arg) : null;
    if (id !== this.detailId) {
      this.detailId = id;
      this.showDetail(id).catch(reportError);
    }
    this.filter = filter;
    this.syncForm();
    if (key !== this.filterKey) {
      const runMode = this.filterKey == null || Boolean(filter.run) || Boolean(this.runMode);
      this.filterKey = key;
      this.runMode = Boolean(filter.run);
      if (runMode) {
        // a run's calls come from /api/sessions/{id}; everything else from the newest-first pages
        this.items = [];
        this.next = null;
        this.done = false;
        await this.loadMore(true);
      } else {
        // the loaded pages are still the newest calls: filter them, scan further if short
        this.renderRows();
        if (this.scanning && this.visible().length < PAGE && !this.done) await this.loadMore(false);
      }
    } else this.renderRows();
  }

  async loadMore(first) {
    this.moreBtn.disabled = true;
    try {
      if (this.filter.run) {
        const run = await this.fetchRun();
        this.items = run;
        this.done = true;
      } else {
        const want = this.visible().length + PAGE;
        let budget = SCAN_BUDGET;
        do {
          const limit = this.scanning ? SCAN_PAGE : PAGE;
          const url = first ? `/api/traces?limit=${limit}` : this.next;
          first = false;
          if (!url) {
            this.done = true;
            break;
          }
          const { data, next } = await api(url);
          const known = new Set(this.items.map((t) => t.id));
          this.items.push(...data.filter((t) => !known.has(t.id)));
          this.next = next;
          this.done = !next;
          budget -= data.length;
        } while (this.scanning && this.visible().length < want && budget > 0 && this.next);
      }
      this.renderRows();
    } finally {
      this.moreBtn.disabled = false;
    }
  }
  async fetchRun() {
    let run;
    try {
      run = await get(`/api/sessions/${encodeURIComponent(this.filter.run)}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return [];
      throw e;
    }
    this.runSig = JSON.stringify(run.calls);
    return run.calls.map((c) => ({ ...c, session_id: run.session_id })).sort((a, b) => b.id - a.id);
  }

  visible() {
    const out = this.items.filter((t) => this.matches(t));
    const key = { cost: (t) => t.cost_usd ?? -1, tokens: (t) => t.total_tokens ?? -1 }[this.sort];
    if (key) out.sort((a, b) => key(b) - key(a) || b.id - a.id);
    return out;
  }
  row(t) {
    let tr = this.rows.get(t.id);
    if (tr) return tr;
    const top = topComponent(t.components);
    const bad = t.outcome && t.outcome !== "ok";
    tr = h("tr", { "data-id": t.id, "data-key": `call-${t.id}`, tabindex: -1, "aria-selected": "false" },
      h("td", { class: "t" }, fmt.clock(t.ts * 1000), h("span", { class: "sub", text: fmt.date(t.ts) })),
      h("td", { class: "model", title: t.model || "" },
        t.model || t.requested_model || "(unknown)",
        bad ? [" ", h("span", { class: "badge err", text: t.status || t.outcome })] : null,
        h("span", { class: "sub", text: [t.provider, t.turn ? `turn ${t.turn}` : null].filter(Boolean).join(" · ") || "\u00a0" })),
      num(fmt.int(t.prompt_tokens)), num(fmt.int(t.completion_tokens)), num(fmt.usd(t.cost_usd)),
      h("td", { class: "num col-lat", text: fmt.ms(t.latency_ms) }),
      h("td", { class: "top col-top" }, top ? [top.name, h("span", { class: "sub", text: fmt.pct(top.share) })] : "—"));
    this.rows.set(t.id, tr);
    return tr;
  }
  renderRows() {
    const list = this.visible();
    const active = document.activeElement;
    const rows = list.map((t) => this.row(t));
    const same = rows.length === this.tbody.children.length && rows.every((r, i) => this.tbody.children[i] === r);
    if (!same) this.tbody.replaceChildren(...rows);
    for (const id of this.fresh) this.rows.get(id)?.classList.add("fresh");
    this.fresh.clear();
    this.markSelected();
    if (!rows.some((r) => r.tabIndex === 0) && rows.length) rows[0].tabIndex = 0;
    if (active && rows.includes(active) && document.activeElement !== active) active.focus({ preventScroll: true });
    this.empty.hidden = rows.length > 0;
    if (!rows.length) {
      this.empty.textContent = this.items.length || Object.keys(this.filter).length
        ? "No call matches these filters in what was loaded."
        : "No calls recorded yet. Point a client at the proxy (llmprof env prints how).";
    }
    this.more.hidden = this.done;
    let note = "";
    if (this.filter.run) note = `Run ${this.filter.run}: all ${fmt.int(this.items.length)} calls.`;
    else if (this.scanning) note = `${fmt.int(list.length)} matching of ${fmt.int(this.items.length)} loaded calls (filtered in the browser; Load more scans further).`;
    if (this.sort !== "newest" && !this.done) note += `${note ? " " : ""}Sorted among the ${fmt.int(this.items.length)} loaded calls.`;
    if (this.note.textContent !== note) this.note.textContent = note;
  }
  markSelected() {
    for (const [id, tr] of this.rows) {
      const sel = id === this.detailId;
      tr.setAttribute("aria-selected", String(sel));
      if (sel) {
        for (const other of this.tbody.children) other.tabIndex = -1;
        tr.tabIndex = 0;
      }
    }
  }
  rowClick(ev) {
    const tr = ev.target.closest("tr[data-id]");
    if (tr) this.open(Number(tr.dataset.id));
  }
  rowKey(ev) {
    const tr = ev.target.closest("tr[data-id]");
    if (!tr) return;
    const rows = [...this.tbody.children];
    const i = rows.indexOf(tr);
    const moves = { ArrowDown: 1, j: 1, ArrowUp: -1, k: -1, PageDown: 10, PageUp: -10 };
    let target = null;
    if (ev.key in moves) target = rows[Math.max(0, Math.min(rows.length - 1, i + moves[ev.key]))];
    else if (ev.key === "Home") target = rows[0];
    else if (ev.key === "End") target = rows[rows.length - 1];
    else if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      this.open(Number(tr.dataset.id));
      return;
    } else return;
    ev.preventDefault();
    if (target) {
      tr.tabIndex = -1;
      target.tabIndex = 0;
      target.focus();
    }
  }
  open(id) {
    go("calls", id, parseHash().query);
  }
  focusList() {
    const row = this.tbody.querySelector('tr[tabindex="0"]') || this.tbody.firstElementChild;
    if (row) row.focus();
  }

  // -- live
  async poll() {
    const head = await this.watch.check(false);
    if (head == null) return;
    const tasks = [this.loadOptions()];
    if (this.filter.run) {
      tasks.push((async () => {
        const before = this.runSig;
        const items = await this.fetchRun();
        if (this.runSig !== before) {
          const known = new Set(this.items.map((t) => t.id));
          for (const t of items) if (!known.has(t.id)) this.fresh.add(t.id);
          this.items = items;
          this.renderRows();
          changed();
        }
      })());
    } else {
      tasks.push((async () => {
        const limit = this.scanning ? SCAN_PAGE : PAGE;
        const { data, next } = await api(`/api/traces?limit=${limit}`);
        const top = this.items.length ? this.items[0].id : 0;
        const fresh = data.filter((t) => t.id > top);
        if (!fresh.length) return;
        if (fresh.length === data.length) {
          // more new calls than a page (or the first ones): start over from the newest
          this.items = data;
          this.next = next;
          this.done = !next;
        } else this.items.unshift(...fresh);
        if (top) for (const t of fresh) this.fresh.add(t.id);
        this.renderRows();
        changed();
      })());
    }
    await Promise.all(tasks);
    this.watch.mark(head);
  }

  // -- detail
  async showDetail(id) {
    this.flame?.destroy();
    this.flame = null;
    this.root.classList.toggle("no-detail", id == null);
    this.markSelected();
    if (id == null) {
      this.detailPane.replaceChildren();
      return;
    }
    let t = this.details.get(id);
    if (!t) {
      const slow = setTimeout(() => this.detailPane.replaceChildren(h("p", { class: "muted", text: "Loading…" })), 150);
      try {
        t = await get(`/api/traces/${id}`);
      } catch (e) {
        clearTimeout(slow);
        if (this.detailId !== id) return;
        this.detailPane.replaceChildren(h("p", { class: "error", text: e instanceof ApiError && e.status === 404 ? `No call #${id}.` : `Could not load call #${id}: ${e.message}` }));
        if (!(e instanceof ApiError && e.status === 404)) throw e;
        return;
      }
      clearTimeout(slow);
      this.details.set(id, t);
      if (this.details.size > 30) this.details.delete(this.details.keys().next().value);
    }
    if (this.detailId !== id) return;
    this.renderDetail(t);
  }
  renderDetail(t) {
    const a = t.analysis || {};
    const parts = a.price && a.price.parts ? a.price.parts : null;
    const inputCost = parts ? ["uncached_input", "cache_read", "cache_write"].reduce((acc, k) => acc + (parts[k] || 0), 0) : null;
    const prompt = t.prompt_tokens;
    const cached = t.cached_tokens || 0;
    const written = t.cache_write_tokens || 0;
    const uncached = prompt == null ? null : Math.max(0, prompt - cached - written);
    const bad = t.outcome !== "ok";
    const q = parseHash().query;
    const runQ = new URLSearchParams();
    const tmplQ = new URLSearchParams(t.route ? { template: t.route } : {});
    const meta = h("p", { class: "meta" },
      h("span", { text: t.provider || "unknown provider" }),
      h("span", { text: t.endpoint || "" }),
      h("span", { text: fmt.time(t.ts) }),
      t.streamed ? h("span", { text: "streamed" }) : null,
      t.session_id ? h("span", {}, "run ", h("a", { href: hashFor("runs", t.session_id, runQ), text: t.session_id }), t.turn ? ` turn ${t.turn}` : "") : null,
      t.route ? h("span", {}, "template ", h("a", { href: hashFor("calls", null, tmplQ), text: t.route_label || t.route })) : null);
    const head = h("div", { class: "call-head" },
      h("div", {},
        h("h2", { id: "call-title", tabindex: -1 }, t.model || t.requested_model || "(unknown model)", " ", h("span", { class: "muted", text: `#${t.id}` })),
        meta),
      h("button", { type: "button", class: "ghost close", "aria-label": "Close the call (Esc)", text: "×", onclick: () => go("calls", null, q) }));
    const outcome = bad ? `${t.outcome}${t.status ? ` ${t.status}` : ""}` : "ok";
    const tiles = h("dl", { class: "tiles" },
      tile("uncached", "Uncached input", fmt.int(uncached)),
      tile("cached", "Cached input", fmt.int(t.cached_tokens)),
      tile("cache-write", "Cache write", fmt.int(t.cache_write_tokens)),
      tile("output", "Output", fmt.int(t.completion_tokens)),
      tile("reasoning", "of which reasoning", fmt.int(t.reasoning_tokens), "sub"),
      tile("cost", "Cost", fmt.usd(t.cost_usd)),
      tile("latency", "Latency", fmt.ms(t.latency_ms)),
      tile("ttft", "TTFT", fmt.ms(t.ttft_ms)),
      tile("outcome", "Outcome", outcome));
    const priceLine = h("p", { class: "price-parts" });
    if (parts) {
      const bits = [`input ${fmt.usd(inputCost)} (uncached ${fmt.usd(parts.uncached_input || 0)}, cache read ${fmt.usd(parts.cache_read || 0)}, cache write ${fmt.usd(parts.cache_write || 0)})`, `output ${fmt.usd(parts.output || 0)}`];
      if (parts.request) bits.push(`request fee ${fmt.usd(parts.request)}`);
      priceLine.textContent = `${bits.join(" · ")} — ${t.price_source || ""}`;
    } else priceLine.textContent = t.price_source || (t.cost_usd == null ? "Unpriced: no price known for this model." : "");
    const errLine = t.error ? h("p", { class: "error", text: t.error }) : null;

    const flameSec = h("section", { "aria-labelledby": "flame-title" },
      h("h3", { id: "flame-title", text: prompt != null ? `Context: where the ${fmt.int(prompt)} input tokens went` : "Context" }));
    const tree = t.detail && t.detail.tokens > 0 ? t.detail : fromComponents(t.components);
    const flameHost = h("div", { class: "flame-host" });
    flameSec.append(flameHost);

    const findings = ((a.findings || []).slice()).sort((x, y) => rank(x.severity) - rank(y.severity) || (y.save_usd || 0) - (x.save_usd || 0));
    const fSec = h("section", { "aria-labelledby": "findings-title" }, h("h3", { id: "findings-title", text: "Findings" }));
    if (findings.length) {
      if (t.reclaimable_usd || t.reclaimable_tokens) {
        fSec.append(h("p", { class: "reclaim-line", text: `Reclaimable on this call: ${fmt.usd(t.reclaimable_usd)} (${fmt.int(t.reclaimable_tokens)} tokens)` }));
      }
      fSec.append(h("ul", { class: "findings" }, findings.map((f) => h("li", { class: f.severity },
        f.save_usd > 0 || f.reclaimable_tokens > 0 ? h("span", { class: "save", text: `save ${fmt.usd(f.save_usd)} · ${fmt.int(f.reclaimable_tokens)} tokens` }) : null,
        h("span", { class: `badge ${f.severity}`, text: f.severity }),
        h("span", { class: "title", text: f.title }),
        h("p", { text: f.body })))));
    } else fSec.append(h("p", { class: "muted", text: "No analysis for this call." }));

    const bodies = h("section", { "aria-labelledby": "bodies-title" }, h("h3", { id: "bodies-title", text: "Request and response" }),
      jsonBlock(t.request, "Request", true),
      jsonBlock(t.response, "Response", true),
      t.usage_raw != null ? jsonBlock(t.usage_raw, "Usage as reported", false) : null,
      t.request_headers ? jsonBlock(t.request_headers, "Request headers (allowlisted)", false) : null);

    this.detailPane.replaceChildren(h("article", { class: "call", "aria-labelledby": "call-title", "data-id": t.id }, head, errLine, tiles, priceLine, flameSec, fSec, bodies));
    this.detailPane.scrollTop = 0;
    if (tree) {
      this.flame = new Flame(flameHost, tree, inputCost);
      const est = a.attribution && a.attribution.estimated;
      this.flame.note.textContent = `${inputCost != null ? `Cost of a part = the call's input cost (${fmt.usd(inputCost)}) × its share.` : "This call is unpriced."}${est ? " Shares are estimated with a local tokenizer, scaled to the billed total." : ""}`;
    } else flameHost.append(h("p", { class: "muted", text: "No attribution for this call (its request could not be read)." }));
  }
  destroy() {
    this.flame?.destroy();
  }
  escape() {
    if (this.detailId != null) {
      go("calls", null, parseHash().query);
      this.focusList();
      return true;
    }
    return false;
  }
}
const rank = (sev) => ({ warn: 0, tip: 1, ok: 2 })[sev] ?? 3;
function fromComponents(comps) {
  const entries = Object.entries(comps || {}).filter(([, v]) => v > 0);
  if (!entries.length) return null;
  return { name: "context", tokens: entries.reduce((a, [, v]) => a + v, 0), children: entries.map(([name, tokens]) => ({ name, tokens, children: [] })) };
}

// ---- Trends view ----------------------------------------------------------------
class TrendsView {
  constructor(main) {
    this.days = 30;
    this.range = h("div", { class: "seg", role: "group", "aria-label": "Range" },
      [7, 30, 90].map((d) => h("button", { type: "button", "data-days": d, "aria-pressed": "false", text: `${d} days`, onclick: () => go("trends", null, new URLSearchParams({ days: d })) })));
    this.banner = h("section", { class: "banner panel", "aria-label": "Reclaimable" });
    this.totals = h("dl", { class: "tiles totals" });
    this.chart = h("div", { class: "chart daily-chart" });
    this.models = h("div", { class: "models" });
    this.routes = h("div", { class: "routes" });
    this.chartTitle = h("h3", { text: "Cost per day" });
    main.replaceChildren(h("div", { class: "trends" },
      h("div", { class: "view-head" }, h("h2", { text: "Trends" }), this.range),
      this.banner,
      h("section", { class: "section panel" }, this.chartTitle, this.chart, this.totals),
      h("div", { class: "cols" },
        h("section", { class: "section panel" }, h("h3", { text: "By model" }), this.models),
        h("section", { class: "section panel" }, h("h3", { text: "Templates by cost" }), this.routes))));
    this.watch = new Watch();
    this.s = { banner: new Section(this.banner), daily: new Section(this.chart), models: new Section(this.models), routes: new Section(this.routes) };
  }
  async update(r) {
    const d = clampInt(r.query.get("days"), 1, 366, 30);
    if (d !== this.days || !this.loaded) {
      this.days = d;
      this.s.daily.sig = null;
      for (const b of this.range.children) b.setAttribute("aria-pressed", String(Number(b.dataset.days) === d));
      this.chartTitle.textContent = `Cost per day, last ${d} days`;
    }
    this.loaded = true;
    await this.poll(true);
  }
  async poll(force) {
    const head = await this.watch.check(force);
    if (head == null) return;
    const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const [daily, models, rec, routes] = await Promise.all([
      get(`/api/summary/daily?days=${this.days}${tz ? `&tz=${encodeURIComponent(tz)}` : ""}`),
      get("/api/summary/models"), get("/api/reclaimable"), get("/api/routes?limit=15"),
    ]);
    this.s.banner.show(rec, (el, x) => this.renderBanner(el, x));
    this.s.daily.show(daily, (el, x) => this.renderDaily(el, x));
    this.s.models.show(models, (el, x) => this.renderModels(el, x));
    this.s.routes.show(routes, (el, x) => this.renderRoutes(el, x));
    this.watch.mark(head);
  }
  renderBanner(el, r) {
    const clean = !(r.reclaimable_usd > 0);
    el.classList.toggle("clean", clean);
    const src = r.by_source || {};
    const kids = [];
    if (clean) {
      kids.push(h("p", { class: "headline", text: r.calls ? `Nothing reclaimable found across ${fmt.int(r.calls)} calls.` : "No calls recorded yet." }));
    } else {
      kids.push(h("p", { class: "headline", text: `${fmt.usd(r.reclaimable_usd)} reclaimable: ${r.pct.toFixed(1)}% of ${fmt.usd(r.cost_usd)} spent over ${fmt.int(r.calls)} calls` }));
      kids.push(h("p", { class: "sources", text: `caching ${fmt.usd(src.caching || 0)} · duplicates ${fmt.usd(src.duplicates || 0)} · unused tools ${fmt.usd(src.unused_tools || 0)}` }));
      kids.push(h("ol", { class: "actions" }, r.actions.map((a) => h("li", {},
        h("span", { class: "save", text: `save ${fmt.usd(a.save_usd)}` }), ` — ${a.action} (${fmt.int(a.calls)} ${a.calls === 1 ? "call" : "calls"})`))));
    }
    const extra = [];
    if (r.projectable && r.monthly_reclaimable_usd != null) extra.push(`About ${fmt.usd(r.monthly_reclaimable_usd)} a month at this rate.`);
    else if (r.calls) extra.push(`A monthly projection needs 50 calls over 2 active days (now ${fmt.int(r.calls)} over ${r.active_days}).`);
    if (r.unused_tools_pending) extra.push(`${r.unused_tools_pending} shipped tool(s) still being judged (after 20 calls of their template).`);
    if (r.unpriced_calls) extra.push(`${fmt.int(r.unpriced_calls)} unpriced call(s) are not counted.`);
    if (extra.length) kids.push(h("p", { class: "note", text: extra.join(" ") }));
    el.replaceChildren(...kids);
  }
  renderDaily(el, days) {
    const sum = (k) => days.reduce((a, d) => a + (d[k] || 0), 0);
    const cost = sum("cost_usd");
    const calls = sum("calls");
    barChart(el, {
      title: "Cost per day", items: days, value: (d) => d.cost_usd, label: (d) => d.day.slice(5), yFormat: fmt.usd,
      readout: (d) => `${d.day}: ${fmt.usd(d.cost_usd)} · ${fmt.int(d.calls)} calls · ${fmt.int(d.tokens)} tokens${d.unpriced_calls ? ` · ${d.unpriced_calls} unpriced` : ""}`,
    });
    this.totals.replaceChildren(
      tile("spend", `Spend, ${days.length} days`, fmt.usd(Math.round(cost * 1e6) / 1e6)),
      tile("calls", "Calls", fmt.int(calls)),
      tile("tokens", "Tokens", fmt.int(sum("tokens"))),
      tile("avg", "Per call", calls ? fmt.usd(cost / calls) : "—"),
      tile("unpriced", "Unpriced calls", fmt.int(sum("unpriced_calls"))));
  }
  renderModels(el, rows) {
    if (!rows.length) {
      el.replaceChildren(h("p", { class: "muted", text: "No calls yet." }));
      return;
    }
    const total = rows.reduce((a, r) => a + r.cost_usd, 0) || 1;
    el.replaceChildren(h("table", { class: "grid models-table" },
      h("thead", {}, h("tr", {}, ["Model", "Provider"].map((t) => h("th", { text: t })), ["Calls", "Tokens", "Cached", "Cost", "Share"].map((t) => h("th", { class: "num", text: t })))),
      h("tbody", {}, rows.map((r) => h("tr", { "data-model": r.model || "" },
        h("td", {}, h("a", { href: hashFor("calls", null, new URLSearchParams(r.model ? { model: r.model } : {})), text: r.model || "(unknown)" })),
        h("td", { text: r.provider || "—" }),
        num(fmt.int(r.calls)), num(fmt.int(r.tokens)), num(fmt.pct(r.prompt_tokens ? r.cached_tokens / r.prompt_tokens : null)),
        num(`${fmt.usd(r.cost_usd)}${r.unpriced_calls ? ` +${r.unpriced_calls} unpriced` : ""}`),
        h("td", { class: "num" }, h("span", { class: "sharebar", style: { width: `${Math.round((60 * r.cost_usd) / total)}px` } }), fmt.pct(r.cost_usd / total)))))));
  }
  renderRoutes(el, rows) {
    if (!rows.length) {
      el.replaceChildren(h("p", { class: "muted", text: "No prompt templates yet." }));
      return;
    }
    el.replaceChildren(h("table", { class: "grid routes-table" },
      h("thead", {}, h("tr", {}, h("th", { text: "Template" }), ["Calls", "Avg input", "Cache hit", "Cost"].map((t) => h("th", { class: "num", text: t })), h("th", { text: "Models" }))),
      h("tbody", {}, rows.map((r) => h("tr", { "data-route": r.route },
        h("td", {}, h("a", { href: hashFor("calls", null, new URLSearchParams({ template: r.route })), text: r.label || r.route })),
        num(fmt.int(r.calls)), num(fmt.int(r.avg_prompt_tokens)), num(fmt.pct(r.cache_hit_ratio)), num(fmt.usd(r.cost_usd)),
        h("td", { class: "muted", text: r.models.join(", ") }))))));
  }
}

// ---- Runs view ------------------------------------------------------------------
class RunsView {
  constructor(main) {
    this.main = main;
    this.limit = 50;
    this.runId = undefined;
    this.watch = new Watch();
  }
  async update(r) {
    const id = r.arg;
    const singles = r.query.get("singles") === "1";
    if (id !== this.runId || singles !== this.singles) {
      this.runId = id;
      this.singles = singles;
      this.build();
    }
    await this.poll(true);
  }
  build() {
    if (this.runId == null) {
      this.listEl = h("div", { class: "runs-list" });
      const toggle = h("label", {}, h("input", { type: "checkbox", checked: this.singles || null, onchange: (ev) => go("runs", null, new URLSearchParams(ev.target.checked ? { singles: "1" } : {})) }), " include single calls");
      this.moreBtn = h("button", { type: "button", class: "ghost", text: "Show more runs", onclick: () => { this.limit = Math.min(500, this.limit + 50); this.poll(true).catch(reportError); } });
      this.main.replaceChildren(h("div", { class: "runs" },
        h("div", { class: "view-head" }, h("h2", { text: "Runs" }), h("span", { class: "muted", text: "an agent's calls, grouped" }), h("span", { class: "seg" }, toggle)),
        h("section", { class: "section panel" }, this.listEl, h("div", { class: "more" }, this.moreBtn))));
      this.section = new Section(this.listEl);
    } else {
      this.detailEl = h("div", { class: "run-detail" });
      this.main.replaceChildren(h("div", { class: "runs" },
        h("a", { class: "back", href: hashFor("runs", null, null), text: "← All runs" }), this.detailEl));
      this.section = new Section(this.detailEl);
    }
  }
  async poll(force) {
    const head = await this.watch.check(force);
    if (head == null) return;
    await this.refresh();
    this.watch.mark(head);
  }
  async refresh() {
    if (this.runId == null) {
      const rows = await get(`/api/sessions?limit=${this.limit}&min_turns=${this.singles ? 1 : 2}`);
      this.moreBtn.hidden = rows.length < this.limit || this.limit >= 500;
      this.section.show(rows, (el, x) => this.renderList(el, x));
      return;
    }
    let run;
    try {
      run = await get(`/api/sessions/${encodeURIComponent(this.runId)}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        this.section.show({ missing: this.runId }, (el) => el.replaceChildren(h("p", { class: "error", text: `No run ${this.runId}.` })));
        return;
      }
      throw e;
    }
    this.section.show(run, (el, x) => this.renderRun(el, x));
  }
  renderList(el, rows) {
    if (!rows.length) {
      el.replaceChildren(h("p", { class: "empty", text: "No runs yet: calls join a run by header, harness id or conversation continuity." }));
      return;
    }
    el.replaceChildren(h("table", { class: "grid runs-table", "aria-label": "Runs" },
      h("thead", {}, h("tr", {}, h("th", { text: "Run" }), h("th", { class: "num", text: "Turns" }), h("th", { text: "Last active" }), h("th", { class: "num", text: "Context first → last" }), h("th", { class: "num", text: "Tokens" }), h("th", { class: "num", text: "Cost" }), h("th", { text: "Models" }))),
      h("tbody", {}, rows.map((r) => h("tr", { "data-run": r.session_id },
        h("td", {}, h("a", { href: hashFor("runs", r.session_id, null), text: r.session_id, "data-key": `run-${r.session_id}` })),
        num(fmt.int(r.turns)), h("td", { class: "t", text: fmt.time(r.last) }),
        num(`${fmt.int(r.first_prompt_tokens)} → ${fmt.int(r.last_prompt_tokens)}`),
        num(fmt.int(r.tokens)), num(fmt.usd(r.cost_usd)), h("td", { class: "muted", text: r.models.join(", ") }))))));
  }
  renderRun(el, run) {
    const calls = run.calls;
    const growth = run.first_prompt_tokens ? run.last_prompt_tokens / run.first_prompt_tokens : null;
    const comps = new Set();
    for (const c of calls) for (const k of Object.keys(c.components || {})) comps.add(k);
    const keys = [...comps].sort((a, b) => (ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99));
    const stacks = (c) => {
      const parts = keys.map((k) => ({ key: k, value: (c.components || {})[k] || 0, color: COLORS[k] || "#a7b0ba" }));
      const known = parts.reduce((a, p) => a + p.value, 0);
      if ((c.prompt_tokens || 0) > known) parts.push({ key: "unattributed", value: c.prompt_tokens - known, color: COLORS.unattributed });
      return parts;
    };
    const ctxChart = h("div", { class: "chart ctx-chart" });
    const costChart = h("div", { class: "chart cost-chart" });
    const open = (c) => go("calls", c.id, new URLSearchParams({ run: run.session_id }));
    el.replaceChildren(
      h("div", { class: "view-head" }, h("h2", { text: `Run ${run.session_id}` }), h("span", { class: "muted", text: run.models.join(", ") })),
      h("dl", { class: "tiles run-tiles" },
        tile("turns", "Turns", fmt.int(run.turns)),
        tile("tokens", "Tokens", fmt.int(run.tokens)),
        tile("cost", "Cost", fmt.usd(run.cost_usd)),
        tile("duration", "Duration", fmt.duration(run.last - run.started)),
        tile("growth", "Context growth", `${fmt.int(run.first_prompt_tokens)} → ${fmt.int(run.last_prompt_tokens)}${growth ? ` (×${growth.toFixed(1)})` : ""}`, "wide")),
      h("section", { class: "section panel" }, h("h3", { text: "Context per turn: components and growth" }), ctxChart,
        h("ul", { class: "legend" }, [...keys, ...(calls.some((c) => stacks(c).some((p) => p.key === "unattributed")) && !keys.includes("unattributed") ? ["unattributed"] : [])].map((k) => h("li", {}, swatch(COLORS[k] || "#a7b0ba"), k)))),
      h("section", { class: "section panel" }, h("h3", { text: "Cost per turn" }), costChart),
      h("section", { class: "section panel" }, h("h3", { text: "Turns" }), this.turnTable(run)));
    const prev = (i) => (i > 0 ? calls[i - 1].prompt_tokens || 0 : null);
    barChart(ctxChart, {
      title: "Context per turn", items: calls, value: (c) => c.prompt_tokens || 0, stacks, line: (c) => c.prompt_tokens || 0,
      label: (c) => `#${c.turn}`, yFormat: fmt.compact, onOpen: open,
      readout: (c, i) => {
        const parts = stacks(c).filter((p) => p.value > 0).map((p) => `${p.key} ${fmt.int(p.value)}`);
        const delta = prev(i) == null ? "" : ` (${c.prompt_tokens - prev(i) >= 0 ? "+" : ""}${fmt.int((c.prompt_tokens || 0) - prev(i))})`;
        return `Turn ${c.turn}: ${fmt.int(c.prompt_tokens)} input tokens${delta} · ${parts.join(" · ")}`;
      },
    });
    barChart(costChart, {
      title: "Cost per turn", items: calls, value: (c) => c.cost_usd || 0, label: (c) => `#${c.turn}`, yFormat: fmt.usd, height: 150, onOpen: open,
      readout: (c) => `Turn ${c.turn}: ${fmt.usd(c.cost_usd)} · ${c.model || ""} · ${fmt.ms(c.latency_ms)}${c.outcome !== "ok" ? ` · ${c.outcome}` : ""}`,
    });
  }
  turnTable(run) {
    const q = new URLSearchParams({ run: run.session_id });
    return h("table", { class: "grid turns-table" },
      h("thead", {}, h("tr", {}, h("th", { class: "num", text: "Turn" }), h("th", { text: "Time" }), h("th", { text: "Model" }), ["In", "Cached", "Out", "Cost", "Latency"].map((t) => h("th", { class: "num", text: t })), h("th", { text: "Top component" }))),
      h("tbody", {}, run.calls.map((c) => {
        const top = topComponent(c.components);
        return h("tr", { "data-turn": c.turn },
          h("td", { class: "num" }, h("a", { href: hashFor("calls", c.id, q), text: `#${c.turn}`, "data-key": `turn-${c.id}`, "aria-label": `Open turn ${c.turn} (call ${c.id})` })),
          h("td", { class: "t", text: fmt.time(c.ts) }),
          h("td", {}, c.model || "—", c.outcome !== "ok" ? [" ", h("span", { class: "badge err", text: c.outcome })] : null),
          num(fmt.int(c.prompt_tokens)), num(fmt.int(c.cached_tokens)), num(fmt.int(c.completion_tokens)), num(fmt.usd(c.cost_usd)), num(fmt.ms(c.latency_ms)),
          h("td", { text: top ? `${top.name} ${fmt.pct(top.share)}` : "—" }));
      })));
  }
}

// ---- app ------------------------------------------------------------------------
const VIEWS = { calls: CallsView, trends: TrendsView, runs: RunsView };
let current = null;
let generation = 0;

async function route() {
  const r = parseHash();
  if (!VIEWS[r.name]) {
    location.replace("#/calls");
    return;
  }
  for (const a of document.querySelectorAll(".top nav a")) {
    if (a.dataset.view === r.name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!current || current.name !== r.name) {
    current?.view.destroy?.();
    hideTip();
    current = { name: r.name, view: new VIEWS[r.name]($("#main")) };
    document.title = `llmprof · ${r.name[0].toUpperCase()}${r.name.slice(1)}`;
  }
  const gen = ++generation;
  try {
    await current.view.update(r);
    if (gen === generation) setStatus(true);
  } catch (e) {
    reportError(e);
  }
}
function restart() {
  current?.view.destroy?.();
  current = null;
  route();
}

let polling = false;
async function tick() {
  if (document.hidden || polling || !current || $("#token-dialog").open) return;
  polling = true;
  try {
    await current.view.poll();
    setStatus(true);
  } catch (e) {
    reportError(e);
  } finally {
    polling = false;
  }
}

function onKey(ev) {
  if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const t = ev.target;
  const typing = t instanceof HTMLInputElement || t instanceof HTMLSelectElement || t instanceof HTMLTextAreaElement;
  if (document.querySelector("dialog[open]")) return;
  if (ev.key === "Escape") {
    if (typing) t.blur();
    else if (current?.view.escape?.()) ev.preventDefault();
    return;
  }
  if (typing) return;
  const views = { 1: "calls", 2: "trends", 3: "runs" };
  if (views[ev.key]) {
    ev.preventDefault();
    location.hash = `#/${views[ev.key]}`;
    $("#main").focus({ preventScroll: true });
  } else if (ev.key === "/") {
    ev.preventDefault();
    if (current?.name !== "calls") location.hash = "#/calls";
    setTimeout(() => $("#f-model")?.focus(), 0);
  } else if (ev.key === "?") {
    ev.preventDefault();
    $("#help-dialog").showModal();
  } else if ((ev.key === "j" || ev.key === "k" || ev.key === "ArrowDown") && current?.name === "calls" && !t.closest?.(".calls-table, svg, .chart")) {
    ev.preventDefault();
    current.view.focusList();
  }
}

function start() {
  setupToken();
  window.addEventListener("hashchange", route);
  document.addEventListener("keydown", onKey);
  document.addEventListener("visibilitychange", () => !document.hidden && tick());
  setInterval(tick, POLL_MS);
  if (!location.hash) location.replace("#/calls");
  route();
}
start();
