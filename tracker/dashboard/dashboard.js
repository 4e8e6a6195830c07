/*
 * PeerTV tracker dashboard: plain browser JavaScript, no framework, no build step.
 * Data arrives over socket.io (`watch`, then `directory-update` and `stats` pushes); `/api/channels` is
 * fetched once as a fallback. Every string from the server goes into the page through textContent or
 * setAttribute, never as markup.
 */
/* global window, document, fetch, ResizeObserver, getComputedStyle, location, history */

const SVG_NS = 'http://www.w3.org/2000/svg';
const STATUSES = ['live', 'ended', 'idle'];
const KINDS = ['browser', 'node'];
/** Charts span at least this many sampling intervals, so a young history does not stretch across the axis. */
const MIN_WINDOW_SAMPLES = 30;

const $ = (id) => document.getElementById(id);

const state = {
  /** 'connecting' | 'online' | 'offline' */
  conn: 'connecting',
  /** A directory arrived (from the socket or the REST fallback). */
  directoryKnown: false,
  socketDirectory: false,
  /** id → ChannelInfo, in directory order. */
  channels: new Map(),
  /** id → ChannelStats (newest push). */
  stats: new Map(),
  selected: null,
  userPicked: false,
  lastUpdate: 0,
  hoverPeer: null,
};

// ---------------------------------------------------------------- small helpers

const num = (v, fallback = 0) => (typeof v === 'number' && Number.isFinite(v) ? v : fallback);
const str = (v) => (typeof v === 'string' ? v : v === null || v === undefined ? '' : String(v));

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function svg(tag, attrs, parent) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs ?? {})) e.setAttribute(k, String(v));
  if (parent) parent.appendChild(e);
  return e;
}

function formatKbps(kbps) {
  const k = num(kbps);
  if (k >= 1e6) return `${(k / 1e6).toFixed(2)} Gbit/s`;
  if (k >= 1000) return `${(k / 1000).toFixed(k >= 1e5 ? 0 : 1)} Mbit/s`;
  return `${Math.round(k)} kbit/s`;
}

function formatBytes(bytes) {
  const b = num(bytes);
  if (b >= 1e9) return `${(b / 1e9).toFixed(2)} GB`;
  if (b >= 1e6) return `${(b / 1e6).toFixed(1)} MB`;
  if (b >= 1e3) return `${(b / 1e3).toFixed(1)} kB`;
  return `${Math.round(b)} B`;
}

function formatPercent(ratio) {
  return typeof ratio === 'number' && Number.isFinite(ratio) ? `${Math.round(ratio * 100)} %` : '—';
}

function clock(ms, withSeconds = true) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return withSeconds
    ? `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`
    : `${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** FNV-1a: a stable pseudo-random order for peers, so the layout does not depend on arrival order. */
function hash(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(`--${name}`).trim() || '#888';
}

// ---------------------------------------------------------------- data in

function setDirectory(list, fromSocket) {
  if (!Array.isArray(list)) return;
  if (!fromSocket && state.socketDirectory) return; // the REST answer may be older than the socket's
  if (fromSocket) state.socketDirectory = true;
  state.directoryKnown = true;
  const next = new Map();
  for (const c of list) if (c && typeof c.id === 'string') next.set(c.id, c);
  state.channels = next;
  for (const id of [...state.stats.keys()]) if (!next.has(id)) state.stats.delete(id);
  ensureSelection();
  render();
}

/** Entries that changed (`upsert`) or left (`remove`) since the full list `watch` answered with. */
function applyDirectoryUpdate(update) {
  if (!update || !state.socketDirectory) return;
  for (const c of Array.isArray(update.upsert) ? update.upsert : [])
    if (c && typeof c.id === 'string') state.channels.set(c.id, c);
  for (const id of Array.isArray(update.remove) ? update.remove : []) {
    state.channels.delete(id);
    state.stats.delete(id);
  }
  ensureSelection();
  render();
}

let lastRefetch = 0;
function setStats(list) {
  if (!Array.isArray(list)) return;
  let unknown = false;
  for (const s of list) {
    if (!s || typeof s.channel !== 'string') continue;
    state.stats.set(s.channel, s);
    if (!state.channels.has(s.channel)) unknown = true;
  }
  state.lastUpdate = Date.now();
  // A channel we have no directory entry for (a missed push): ask for the directory again.
  if (unknown && Date.now() - lastRefetch > 5000) {
    lastRefetch = Date.now();
    state.socketDirectory = false;
    fetchDirectory();
  }
  ensureSelection();
  render();
}

function viewersOf(id) {
  const s = state.stats.get(id);
  if (s && s.current) return num(s.current.viewers);
  return num(state.channels.get(id)?.viewers);
}

/** Default: the channel with the most viewers, unless the operator picked one (or the URL names one). */
function ensureSelection() {
  const ids = [...state.channels.keys()];
  if (ids.length === 0) {
    state.selected = null;
    return;
  }
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (wanted && state.channels.has(wanted) && !state.userPicked) {
    state.selected = wanted;
    state.userPicked = true;
    return;
  }
  const current = state.selected !== null && state.channels.has(state.selected) ? state.selected : null;
  if (current && (state.userPicked || viewersOf(current) > 0)) return;
  let best = current ?? ids[0];
  for (const id of ids) if (viewersOf(id) > viewersOf(best)) best = id;
  state.selected = best;
}

function fetchDirectory() {
  fetch('/api/channels', { cache: 'no-store' })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
    .then((list) => setDirectory(list, false))
    .catch(() => {
      if (state.conn !== 'online') setConn('offline');
    });
}

function setConn(conn) {
  if (state.conn === conn) return;
  state.conn = conn;
  render();
}

function connect() {
  if (typeof window.io !== 'function') {
    // The socket.io client did not load (tracker down while the page came from cache): retry.
    setConn('offline');
    window.setTimeout(() => {
      const s = document.createElement('script');
      s.src = '/socket.io/socket.io.js';
      s.onload = connect;
      s.onerror = () => window.setTimeout(connect, 3000);
      document.head.appendChild(s);
    }, 3000);
    return;
  }
  const socket = window.io({ reconnectionDelay: 1000, reconnectionDelayMax: 5000 });
  const watch = () =>
    socket.emit('watch', {}, (ack) => {
      if (ack && ack.ok) setDirectory(ack.channels, true);
      else window.setTimeout(() => socket.connected && watch(), 2000);
    });
  socket.on('connect', () => {
    setConn('online');
    watch();
  });
  socket.on('connect_error', () => setConn('offline'));
  socket.on('disconnect', (reason) => {
    setConn('offline');
    // A server-side disconnect (tracker shutting down) is not retried by socket.io itself.
    if (reason === 'io server disconnect') window.setTimeout(() => socket.connect(), 2000);
  });
  socket.on('directory-update', applyDirectoryUpdate);
  socket.on('stats', setStats);
}

// ---------------------------------------------------------------- rendering

/*
 * Rendering is coalesced into one animation frame: however many pushes and state changes arrive, the
 * page renders at most once a frame, and not at all while it is hidden (no frames run then; it renders
 * once when shown again). Charts, the overlay graph and the peer table are rebuilt only when their data
 * changed.
 */
let renderQueued = false;
function render() {
  if (renderQueued) return;
  renderQueued = true;
  window.requestAnimationFrame(() => {
    renderQueued = false;
    renderNow();
  });
}

function renderNow() {
  renderConn();
  renderPicker();
  renderChannel();
}

function setText(e, text) {
  if (e.textContent !== text) e.textContent = text;
}

/** "60 s", "2 min". */
function windowLabel(seconds) {
  const s = Math.round(num(seconds, 60));
  return s % 60 === 0 && s >= 120 ? `${s / 60} min` : `${s} s`;
}

function renderConn() {
  const conn = $('conn');
  conn.dataset.state = state.conn;
  $('conn-text').textContent =
    state.conn === 'online'
      ? 'connected'
      : state.conn === 'offline'
        ? 'tracker unreachable — retrying'
        : 'connecting…';
  const banner = $('banner');
  const hasData = state.channels.size > 0;
  if (state.conn === 'offline') {
    banner.hidden = false;
    banner.dataset.kind = 'error';
    banner.textContent = hasData
      ? 'Tracker unreachable — retrying… (showing the last data received)'
      : 'Tracker unreachable — retrying…';
  } else if (state.conn === 'connecting' && !hasData) {
    banner.hidden = false;
    banner.dataset.kind = 'info';
    banner.textContent = 'Connecting to the tracker…';
  } else banner.hidden = true;
  $('empty').hidden = !(state.directoryKnown && state.channels.size === 0 && state.conn === 'online');
  $('channel').classList.toggle('stale', state.conn === 'offline');
  $('updated').textContent = state.lastUpdate ? `updated ${clock(state.lastUpdate)}` : 'no data yet';
}

function renderPicker() {
  const picker = $('picker');
  const select = $('channel-select');
  picker.hidden = state.channels.size < 2;
  const want = [...state.channels.values()].map((c) => {
    const v = viewersOf(c.id);
    return { id: c.id, label: `${str(c.title) || c.id} · ${v} viewer${v === 1 ? '' : 's'}` };
  });
  const have = [...select.options];
  const same = have.length === want.length && have.every((o, i) => o.value === want[i].id);
  if (!same) {
    select.replaceChildren(
      ...want.map((w) => {
        const o = el('option', '', w.label);
        o.value = w.id;
        return o;
      }),
    );
  } else have.forEach((o, i) => o.textContent !== want[i].label && (o.textContent = want[i].label));
  if (state.selected !== null && select.value !== state.selected) select.value = state.selected;
}

function renderChannel() {
  const section = $('channel');
  const ch = state.selected !== null ? state.channels.get(state.selected) : undefined;
  if (!ch) {
    section.hidden = true;
    document.title = 'PeerTV tracker — dashboard';
    return;
  }
  section.hidden = false;
  const st = state.stats.get(ch.id);
  const title = str(ch.title) || ch.id;
  setText($('channel-title'), title);
  if (document.title !== `${title} — PeerTV tracker`) document.title = `${title} — PeerTV tracker`;
  const status = $('channel-status');
  const s = str(ch.status);
  const cls = `badge status-${STATUSES.includes(s) ? s : 'unknown'}`;
  if (status.className !== cls) status.className = cls;
  setText(status, s || 'unknown');
  const renditions = Array.isArray(ch.renditions) ? ch.renditions.map((r) => str(r?.name)).join(', ') : '';
  setText(
    $('channel-meta'),
    [
      `channel ${ch.id}`,
      renditions && `renditions ${renditions}`,
      num(ch.segmentDurationS) ? `${num(ch.segmentDurationS)} s segments` : '',
      str(ch.originUrl) && `origin ${str(ch.originUrl)}`,
    ]
      .filter(Boolean)
      .join(' · '),
  );

  const cur = st?.current;
  // The channel's offload: the tracker's figure (tracker/stats.ts), the same one the channel cards show.
  const win = windowLabel(st?.offloadWindowS ?? ch.offloadWindowS);
  setText($('kpi-viewers'), String(cur ? num(cur.viewers) : num(ch.viewers)));
  setText($('kpi-offload'), formatPercent(cur ? cur.offload : ch.offload));
  setText($('kpi-offload-sub'), `last ${win} · segment bytes the origin did not send`);
  setText($('chart-offload-title'), `Offload (last ${win})`);
  setText($('kpi-down'), cur ? formatKbps(cur.downloadKbps) : '—');
  // Upload traffic between peers as the tracker measures it from their uploaded-byte counters.
  setText($('kpi-up'), cur ? formatKbps(cur.uploadKbps) : '—');
  if (cur) {
    const total = num(cur.httpBytes) + num(cur.p2pBytes);
    setText($('kpi-p2p'), formatBytes(cur.p2pBytes));
    setText($('kpi-p2p-sub'), total > 0 ? `of ${formatBytes(total)} received, since start` : 'since start');
  } else {
    setText($('kpi-p2p'), '—');
    setText($('kpi-p2p-sub'), 'since start');
  }

  const historyList = Array.isArray(st?.history) ? st.history.filter((h) => h && Number.isFinite(h.at)) : [];
  for (const chart of charts) chart.update(historyList);
  // The graph and the table are rebuilt only when the snapshot says something new.
  const key = JSON.stringify([
    ch.id,
    st?.overlay?.peers,
    st?.overlay?.links,
    st?.overlay?.flows,
    st?.overlay?.totalPeers,
    cur?.viewers,
  ]);
  if (key !== lastOverlayKey) {
    lastOverlayKey = key;
    renderOverlay(st?.overlay, cur);
    renderPeers(st?.overlay);
  }
}

let lastOverlayKey = '';

// ---------------------------------------------------------------- charts (canvas)

/** Ticks for [0, max]: a step of 1, 2, 2.5 or 5 × 10^n giving about `count` intervals. */
function niceScale(max, count, integer) {
  if (!(max > 0)) max = integer ? 4 : 1;
  const rough = max / count;
  const mag = 10 ** Math.floor(Math.log10(rough));
  const norm = rough / mag;
  let step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
  if (integer) step = Math.max(1, Math.round(step));
  const top = Math.ceil(max / step - 1e-9) * step;
  let decimals = 0;
  while (decimals < 4 && Math.abs(step * 10 ** decimals - Math.round(step * 10 ** decimals)) > 1e-6)
    decimals++;
  return { step, top, decimals };
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200].map((s) => s * 1000);

class Chart {
  /**
   * @param {string} id figure element id
   * @param {{series: {label: string, color: string, value: (s: object) => number | null}[],
   *   unit: (max: number) => {div: number, label: string}, fixedMax?: number, integer?: boolean,
   *   legendValue: (v: number | null) => string}} opts
   */
  constructor(id, opts) {
    this.fig = $(id);
    this.canvas = this.fig.querySelector('canvas');
    this.opts = opts;
    this.history = [];
    /** Time under the pointer (the legend then shows that sample), or null for the newest. */
    this.hoverAt = null;
    this.geometry = null;
    const legend = this.fig.querySelector('.legend');
    this.legendValues = opts.series.map((s) => {
      const li = el('li');
      const sw = el('span', 'sw');
      sw.style.background = cssVar(s.color);
      const b = el('b', '', '—');
      li.append(sw, document.createTextNode(s.label), b);
      legend.appendChild(li);
      return b;
    });
    this.hoverTime = el('li', 'legend-time');
    legend.appendChild(this.hoverTime);
    this.canvas.addEventListener('pointermove', (e) => {
      const g = this.geometry;
      if (!g) return;
      const rect = this.canvas.getBoundingClientRect();
      const px = e.clientX - rect.left;
      this.hoverAt = px < g.left || px > g.left + g.pw ? null : g.t0 + ((px - g.left) / g.pw) * (g.t1 - g.t0);
      this.refresh();
    });
    this.canvas.addEventListener('pointerleave', () => {
      this.hoverAt = null;
      this.refresh();
    });
    let queued = false;
    new ResizeObserver(() => {
      if (queued) return;
      queued = true;
      window.requestAnimationFrame(() => {
        queued = false;
        this.draw();
      });
    }).observe(this.canvas);
  }

  update(historyList) {
    // Redrawn only when the samples changed (a push with a new sample, another channel).
    const first = historyList[0];
    const last = historyList.at(-1);
    const key = `${historyList.length}|${first?.at}|${last?.at}|${last ? this.opts.series.map((s) => s.value(last)).join(',') : ''}`;
    if (key === this.key) return;
    this.key = key;
    this.history = historyList;
    this.fig.dataset.samples = String(historyList.length);
    this.refresh();
  }

  /** The sample under the pointer, if any. */
  hovered() {
    if (this.hoverAt === null || this.history.length === 0) return null;
    let best = null;
    for (const s of this.history)
      if (!best || Math.abs(s.at - this.hoverAt) < Math.abs(best.at - this.hoverAt)) best = s;
    return best;
  }

  refresh() {
    const hovered = this.hovered();
    const shown = hovered ?? this.history.at(-1);
    this.opts.series.forEach((s, i) => {
      this.legendValues[i].textContent = shown ? this.opts.legendValue(s.value(shown)) : '—';
    });
    this.hoverTime.textContent = hovered ? `at ${clock(hovered.at)}` : '';
    this.draw();
  }

  draw() {
    const canvas = this.canvas;
    const w = canvas.clientWidth;
    const h = canvas.clientHeight;
    if (!w || !h) return;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const font = '11px system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif';
    ctx.font = font;
    const muted = cssVar('muted');
    const data = this.history;
    if (data.length === 0) {
      ctx.fillStyle = muted;
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.fillText('waiting for samples…', w / 2, h / 2);
      return;
    }

    const { series, fixedMax, integer } = this.opts;
    let max = 0;
    for (const s of data)
      for (const ser of series) {
        const v = ser.value(s);
        if (typeof v === 'number' && Number.isFinite(v)) max = Math.max(max, v);
      }
    const unit = this.opts.unit(max);
    const scale = niceScale(fixedMax ?? max / unit.div, 4, integer);
    const yTop = scale.top;

    const t1 = data.at(-1).at;
    const spacing = data.length > 1 ? (t1 - data[0].at) / (data.length - 1) : 2000;
    const t0 = Math.min(data[0].at, t1 - MIN_WINDOW_SAMPLES * Math.max(100, spacing));

    // Geometry: room for the y labels on the left, the unit on top, time labels below.
    const yLabels = [];
    for (let v = 0; v <= yTop + 1e-9; v += scale.step) yLabels.push({ v, text: v.toFixed(scale.decimals) });
    const labelW = Math.max(...yLabels.map((l) => ctx.measureText(l.text).width));
    const left = Math.ceil(labelW) + 12;
    const right = 10;
    const top = 22;
    const bottom = 22;
    const pw = w - left - right;
    const ph = h - top - bottom;
    if (pw < 20 || ph < 20) return;
    this.geometry = { left, pw, t0, t1 };
    const x = (t) => left + ((t - t0) / Math.max(1, t1 - t0)) * pw;
    const y = (v) => top + ph - (v / unit.div / yTop) * ph;

    // Grid and y labels.
    ctx.lineWidth = 1;
    ctx.strokeStyle = cssVar('grid');
    ctx.fillStyle = muted;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const l of yLabels) {
      const yy = Math.round(top + ph - (l.v / yTop) * ph) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, yy);
      ctx.lineTo(left + pw, yy);
      ctx.stroke();
      ctx.fillText(l.text, left - 6, yy);
    }
    ctx.textAlign = 'left';
    ctx.textBaseline = 'alphabetic';
    ctx.fillText(unit.label, 2, 11);

    // Time axis.
    const maxTicks = Math.max(2, Math.floor(pw / 72));
    const span = t1 - t0;
    const step = TIME_STEPS.find((s) => span / s <= maxTicks) ?? TIME_STEPS.at(-1);
    ctx.strokeStyle = cssVar('axis');
    ctx.beginPath();
    ctx.moveTo(left, top + ph + 0.5);
    ctx.lineTo(left + pw, top + ph + 0.5);
    ctx.stroke();
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      const xx = Math.round(x(t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(xx, top + ph);
      ctx.lineTo(xx, top + ph + 4);
      ctx.stroke();
      const text = clock(t, step < 60_000);
      const tw = ctx.measureText(text).width / 2;
      const tx = Math.min(Math.max(xx, left + tw), w - tw - 1);
      ctx.fillText(text, tx, top + ph + 6);
    }

    // Series: lines with gaps where the value is unknown, a soft area under a lone series.
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top - 3, pw + 3, ph + 6);
    ctx.clip();
    for (const ser of series) {
      const color = cssVar(ser.color);
      const pts = data.map((s) => {
        const v = ser.value(s);
        return typeof v === 'number' && Number.isFinite(v) ? [x(s.at), y(v)] : null;
      });
      const runs = [];
      let run = [];
      for (const p of pts) {
        if (p) run.push(p);
        else if (run.length) {
          runs.push(run);
          run = [];
        }
      }
      if (run.length) runs.push(run);
      for (const r of runs) {
        if (series.length === 1 && r.length > 1) {
          ctx.beginPath();
          ctx.moveTo(r[0][0], top + ph);
          for (const [px, py] of r) ctx.lineTo(px, py);
          ctx.lineTo(r.at(-1)[0], top + ph);
          ctx.closePath();
          ctx.globalAlpha = 0.12;
          ctx.fillStyle = color;
          ctx.fill();
          ctx.globalAlpha = 1;
        }
        ctx.beginPath();
        r.forEach(([px, py], i) => (i ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
        ctx.strokeStyle = color;
        ctx.lineWidth = 2;
        ctx.lineJoin = 'round';
        ctx.lineCap = 'round';
        ctx.stroke();
        if (r.length === 1) {
          ctx.beginPath();
          ctx.arc(r[0][0], r[0][1], 2.5, 0, Math.PI * 2);
          ctx.fillStyle = color;
          ctx.fill();
        }
      }
      const hovered = this.hovered();
      const lastPt = hovered ? pts[data.indexOf(hovered)] : pts.at(-1);
      if (lastPt) {
        ctx.beginPath();
        ctx.arc(lastPt[0], lastPt[1], 3.5, 0, Math.PI * 2);
        ctx.fillStyle = color;
        ctx.fill();
      }
    }
    ctx.restore();

    const hovered = this.hovered();
    if (hovered) {
      const hx = Math.round(x(hovered.at)) + 0.5;
      ctx.strokeStyle = cssVar('axis');
      ctx.setLineDash([3, 3]);
      ctx.beginPath();
      ctx.moveTo(hx, top);
      ctx.lineTo(hx, top + ph);
      ctx.stroke();
      ctx.setLineDash([]);
    }
  }
}

const bitrateUnit = (maxKbps) =>
  maxKbps >= 1e6
    ? { div: 1e6, label: 'Gbit/s' }
    : maxKbps >= 1000
      ? { div: 1000, label: 'Mbit/s' }
      : { div: 1, label: 'kbit/s' };

const charts = [
  new Chart('chart-viewers', {
    series: [{ label: 'viewers', color: 'series-viewers', value: (s) => num(s.viewers) }],
    unit: () => ({ div: 1, label: 'viewers' }),
    integer: true,
    legendValue: (v) => (v === null ? '—' : String(v)),
  }),
  new Chart('chart-offload', {
    series: [
      {
        label: 'offload',
        color: 'series-offload',
        value: (s) => (typeof s.offload === 'number' ? s.offload * 100 : null),
      },
    ],
    unit: () => ({ div: 1, label: '% of segment bytes' }),
    fixedMax: 100,
    legendValue: (v) => (v === null ? '—' : `${Math.round(v)} %`),
  }),
  new Chart('chart-bitrate', {
    series: [
      { label: 'download', color: 'series-down', value: (s) => num(s.downloadKbps) },
      { label: 'upload', color: 'series-up', value: (s) => num(s.uploadKbps) },
    ],
    unit: bitrateUnit,
    legendValue: (v) => (v === null ? '—' : formatKbps(v)),
  }),
];

// ---------------------------------------------------------------- overlay graph (SVG)

const SIZE = 600;
const CENTER = SIZE / 2;
const ORIGIN_R = 24;
let peerNodes = new Map(); // id → <g>
let peerRows = new Map(); // id → <tr>

/**
 * Deterministic layout: the origin in the centre, first-tier peers on an inner ring, the others on
 * outer rings; within a ring peers are ordered by a hash of their id, so an update moves nothing but
 * the neighbours of a peer that came or went.
 */
function layout(peers) {
  const n = peers.length;
  const rMax = Math.max(4, Math.min(14, 1500 / Math.max(1, n)));
  const rMin = Math.max(2.5, rMax * 0.45);
  const maxUp = Math.max(1, ...peers.map((p) => num(p.uploadKbps)));
  const radius = (p) => rMin + (rMax - rMin) * Math.sqrt(Math.min(1, num(p.uploadKbps) / maxUp));
  const byHash = (a, b) => hash(a.id) - hash(b.id) || (a.id < b.id ? -1 : 1);
  const tier = peers.filter((p) => p.firstTier).sort(byHash);
  const rest = peers.filter((p) => !p.firstTier).sort(byHash);
  const pos = new Map();
  const rings = [];
  const innerR = 115;
  tier.forEach((p, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / tier.length;
    pos.set(p.id, { x: CENTER + innerR * Math.cos(a), y: CENTER + innerR * Math.sin(a), r: radius(p) });
  });
  if (tier.length) {
    // The ring's label goes in the widest gap between first-tier peers.
    const angles = tier.map((_, i) => -Math.PI / 2 + (2 * Math.PI * i) / tier.length);
    const gapMid = tier.length === 1 ? Math.PI / 2 : angles[0] + Math.PI / tier.length;
    rings.push({ r: innerR, label: 'first tier', angle: gapMid });
  }
  if (rest.length) {
    // As many outer rings (between radius 190 and 272) as it takes to keep nodes apart.
    const gap = 2 * rMax + 8;
    let count = 1;
    const radii = (k) => (k === 1 ? [232] : Array.from({ length: k }, (_, j) => 196 + (76 * j) / (k - 1)));
    const capacity = (k) => radii(k).reduce((sum, r) => sum + Math.floor((2 * Math.PI * r) / gap), 0);
    while (count < 5 && capacity(count) < rest.length) count++;
    const rs = radii(count);
    const total = rs.reduce((a, b) => a + b, 0);
    let k = 0;
    rs.forEach((r, j) => {
      const m = j === rs.length - 1 ? rest.length - k : Math.round((rest.length * r) / total);
      const slice = rest.slice(k, k + m);
      k += slice.length;
      const offset = -Math.PI / 2 + (j % 2 ? Math.PI / Math.max(1, slice.length) : 0) + Math.PI / 7;
      slice.forEach((p, i) => {
        const a = offset + (2 * Math.PI * i) / slice.length;
        pos.set(p.id, { x: CENTER + r * Math.cos(a), y: CENTER + r * Math.sin(a), r: radius(p) });
      });
      if (slice.length) rings.push({ r, label: '' });
    });
  }
  return { pos, rings };
}

/** Endpoint-trimmed quadratic arrow from a to b, bowed to the right so opposite flows separate. */
function arrow(group, a, b, width, cls, bow) {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const len = Math.hypot(dx, dy);
  if (len < 1) return null;
  const nx = -dy / len;
  const ny = dx / len;
  const c = { x: (a.x + b.x) / 2 + nx * len * bow, y: (a.y + b.y) / 2 + ny * len * bow };
  const unit = (p, q) => {
    const l = Math.hypot(q.x - p.x, q.y - p.y) || 1;
    return { x: (q.x - p.x) / l, y: (q.y - p.y) / l };
  };
  const us = unit(a, c);
  const start = { x: a.x + us.x * (a.r + 2), y: a.y + us.y * (a.r + 2) };
  const ue = unit(b, c);
  const tip = { x: b.x + ue.x * (b.r + 2), y: b.y + ue.y * (b.r + 2) };
  const dir = unit(c, tip);
  const headL = 5 + 1.6 * width;
  const headW = 2.5 + 1.1 * width;
  const base = { x: tip.x - dir.x * headL, y: tip.y - dir.y * headL };
  const end = { x: tip.x - dir.x * headL * 0.7, y: tip.y - dir.y * headL * 0.7 };
  const f = (v) => v.toFixed(1);
  const path = svg(
    'path',
    {
      class: cls,
      d: `M${f(start.x)},${f(start.y)} Q${f(c.x)},${f(c.y)} ${f(end.x)},${f(end.y)}`,
      'stroke-width': width.toFixed(2),
    },
    group,
  );
  svg(
    'polygon',
    {
      class: `${cls}-head`,
      points: [
        [tip.x, tip.y],
        [base.x - dir.y * headW, base.y + dir.x * headW],
        [base.x + dir.y * headW, base.y - dir.x * headW],
      ]
        .map(([px, py]) => `${f(px)},${f(py)}`)
        .join(' '),
    },
    group,
  );
  return path;
}

function renderOverlay(overlay, current) {
  const root = $('overlay');
  const peers = Array.isArray(overlay?.peers)
    ? overlay.peers.filter((p) => p && typeof p.id === 'string')
    : [];
  const { pos, rings } = layout(peers);
  const origin = { x: CENTER, y: CENTER, r: ORIGIN_R };

  const gRings = svg('g', { class: 'rings' });
  for (const ring of rings) {
    svg('circle', { class: 'ring', cx: CENTER, cy: CENTER, r: ring.r.toFixed(1) }, gRings);
    if (ring.label) {
      const x = CENTER + ring.r * Math.cos(ring.angle);
      const y = CENTER + ring.r * Math.sin(ring.angle) + 4;
      const t = svg(
        'text',
        { class: 'ring-label', x: x.toFixed(1), y: y.toFixed(1), 'text-anchor': 'middle' },
        gRings,
      );
      t.textContent = ring.label;
    }
  }

  const gLinks = svg('g', { class: 'links' });
  for (const link of Array.isArray(overlay?.links) ? overlay.links : []) {
    const a = pos.get(link?.[0]);
    const b = pos.get(link?.[1]);
    if (!a || !b) continue;
    svg(
      'line',
      { class: 'link', x1: a.x.toFixed(1), y1: a.y.toFixed(1), x2: b.x.toFixed(1), y2: b.y.toFixed(1) },
      gLinks,
    );
  }

  const gTier = svg('g', { class: 'tiers' });
  for (const p of peers) if (p.firstTier && pos.has(p.id)) arrow(gTier, origin, pos.get(p.id), 2, 'tier', 0);

  const gFlows = svg('g', { class: 'flows' });
  const flows = (Array.isArray(overlay?.flows) ? overlay.flows : []).filter(
    (f) => f && pos.has(f.from) && pos.has(f.to) && num(f.bytes) > 0,
  );
  const maxBytes = Math.max(1, ...flows.map((f) => num(f.bytes)));
  // Many flows: thinner and lighter, so the graph stays readable.
  const widest = Math.max(2.5, Math.min(8, 8 * Math.sqrt(12 / Math.max(1, flows.length))));
  gFlows.setAttribute('stroke-opacity', flows.length > 24 ? '0.55' : '0.8');
  for (const f of [...flows].sort((a, b) => num(a.bytes) - num(b.bytes))) {
    const width = 1 + (widest - 1) * (num(f.bytes) / maxBytes);
    const path = arrow(gFlows, pos.get(f.from), pos.get(f.to), width, 'flow', 0.12);
    if (!path) continue;
    path.dataset.from = f.from;
    path.dataset.to = f.to;
    const title = svg('title', {}, path);
    title.textContent = `${f.from} → ${f.to}: ${formatBytes(f.bytes)} in the last interval`;
  }

  const gPeers = svg('g', { class: 'peers' });
  const labels = peers.length <= 24;
  peerNodes = new Map();
  for (const p of peers) {
    const at = pos.get(p.id);
    const kind = KINDS.includes(p.kind) ? p.kind : 'other';
    const g = svg(
      'g',
      {
        class: `peer kind-${kind}${p.mode === 'relay' ? ' relay' : ''}${p.id === state.hoverPeer ? ' hl' : ''}`,
        transform: `translate(${at.x.toFixed(1)},${at.y.toFixed(1)})`,
      },
      gPeers,
    );
    g.dataset.peerId = p.id;
    svg('circle', { class: 'body', r: at.r.toFixed(1) }, g);
    if (p.mode === 'relay') svg('circle', { class: 'relay-ring', r: (at.r + 3.5).toFixed(1) }, g);
    if (labels) {
      // Label outside the node, away from the centre.
      const ang = Math.atan2(at.y - CENTER, at.x - CENTER);
      const d = at.r + (p.mode === 'relay' ? 10 : 7);
      const lx = Math.cos(ang) * d;
      const ly = Math.sin(ang) * d;
      const t = svg(
        'text',
        {
          x: lx.toFixed(1),
          y: (ly + (Math.sin(ang) > 0.3 ? 11 : Math.sin(ang) < -0.3 ? -2 : 4.5)).toFixed(1),
          'text-anchor': Math.cos(ang) > 0.3 ? 'start' : Math.cos(ang) < -0.3 ? 'end' : 'middle',
        },
        g,
      );
      t.textContent = p.id.slice(0, 4);
    }
    const title = svg('title', {}, g);
    title.textContent = [
      p.id,
      `${str(p.kind)} · ${str(p.mode)} · ${str(p.rendition)} · NAT ${str(p.natType)}`,
      `upload ${formatKbps(p.uploadKbps)} · download ${formatKbps(p.downloadKbps)}`,
      `buffer ${num(p.bufferS).toFixed(1)} s${p.firstTier ? ' · first tier' : ''}`,
    ].join('\n');
    peerNodes.set(p.id, g);
  }

  const gOrigin = svg('g', { class: 'origin', transform: `translate(${CENTER},${CENTER})` });
  svg('circle', { r: ORIGIN_R }, gOrigin);
  const ot = svg('text', { 'text-anchor': 'middle', y: 4 }, gOrigin);
  ot.textContent = 'origin';
  const oTitle = svg('title', {}, gOrigin);
  oTitle.textContent = 'origin (HTTP)';

  const parts = [gRings, gLinks, gTier, gFlows, gPeers, gOrigin];
  if (peers.length === 0) {
    const t = svg('text', { class: 'empty-note', x: CENTER, y: CENTER + 60, 'text-anchor': 'middle' });
    t.textContent = overlay ? 'no peers yet' : 'waiting for statistics…';
    parts.push(t);
  }
  root.replaceChildren(...parts);
  root.dataset.peers = String(peers.length);
  root.dataset.flows = String(flows.length);

  // The snapshot is capped (first tier first); the channel may have more peers than it shows.
  const relaysShown = peers.filter((p) => p.mode === 'relay').length;
  const total = Math.max(
    peers.length,
    typeof overlay?.totalPeers === 'number' ? overlay.totalPeers : num(current?.viewers) + relaysShown,
  );
  const count = $('overlay-count');
  count.textContent =
    total > peers.length
      ? `showing ${peers.length} of ${total} peers`
      : `${peers.length} peer${peers.length === 1 ? '' : 's'} · ${flows.length} flow${flows.length === 1 ? '' : 's'}`;
  count.classList.toggle('capped', total > peers.length);
}

// ---------------------------------------------------------------- peer table

function renderPeers(overlay) {
  const tbody = $('peers').tBodies[0];
  const peers = (Array.isArray(overlay?.peers) ? overlay.peers : [])
    .filter((p) => p && typeof p.id === 'string')
    .sort((a, b) => Number(b.firstTier) - Number(a.firstTier) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  peerRows = new Map();
  const rows = peers.map((p) => {
    const tr = el('tr');
    tr.dataset.peerId = p.id;
    if (p.id === state.hoverPeer) tr.classList.add('hl');
    const idCell = el('td', 'id', p.id);
    idCell.title = p.id;
    tr.appendChild(idCell);
    const kind = el('td');
    kind.append(
      el('span', `kind-dot kind-${KINDS.includes(p.kind) ? p.kind : 'other'}`),
      document.createTextNode(str(p.kind)),
    );
    tr.appendChild(kind);
    tr.appendChild(el('td', p.mode === 'relay' ? 'mode-relay' : '', str(p.mode)));
    tr.appendChild(el('td', '', str(p.rendition)));
    tr.appendChild(el('td', '', str(p.natType)));
    tr.appendChild(el('td', 'num', formatKbps(p.uploadKbps)));
    tr.appendChild(el('td', 'num', formatBytes(p.uploadedBytes)));
    const buffer = num(p.bufferS);
    tr.appendChild(el('td', `num${buffer < 2 ? ' low-buffer' : ''}`, `${buffer.toFixed(1)} s`));
    tr.appendChild(el('td', 'center', p.firstTier ? '✓' : '—'));
    peerRows.set(p.id, tr);
    return tr;
  });
  tbody.replaceChildren(...rows);
  $('peers-empty').hidden = rows.length > 0;
  $('peer-count').textContent = overlay ? `${rows.length} shown` : '';
}

// ---------------------------------------------------------------- interaction

function highlight(id) {
  if (state.hoverPeer === id) return;
  for (const m of [peerNodes, peerRows]) {
    if (state.hoverPeer !== null) m.get(state.hoverPeer)?.classList.remove('hl');
    if (id !== null) m.get(id)?.classList.add('hl');
  }
  state.hoverPeer = id;
}

$('overlay').addEventListener('mouseover', (e) =>
  highlight(e.target.closest?.('.peer')?.dataset.peerId ?? null),
);
$('overlay').addEventListener('mouseleave', () => highlight(null));
$('peers').addEventListener('mouseover', (e) =>
  highlight(e.target.closest?.('tr[data-peer-id]')?.dataset.peerId ?? null),
);
$('peers').addEventListener('mouseleave', () => highlight(null));

$('channel-select').addEventListener('change', (e) => {
  const id = e.target.value;
  if (!state.channels.has(id)) return;
  state.selected = id;
  state.userPicked = true;
  history.replaceState(null, '', `#${encodeURIComponent(id)}`);
  render();
});

window.addEventListener('hashchange', () => {
  const id = decodeURIComponent(location.hash.slice(1));
  if (!state.channels.has(id)) return;
  state.selected = id;
  state.userPicked = true;
  render();
});

render();
fetchDirectory();
connect();
