/**
 * PeerTV tracker dashboard: plain DOM, no framework; bundled by esbuild with the player's pages
 * (player/build → tracker/dashboard/dist/dashboard.js), sharing the player's chart
 * (player/src/app/chart.ts) and formatters (player/src/app/format.ts). The overlay graph is in
 * overlay-graph.ts.
 *
 * Data arrives over socket.io (`watch`, then `directory-update` and `stats` pushes); `/api/channels` is
 * fetched once as a fallback. Every string from the server goes into the page through textContent or
 * setAttribute, never as markup.
 *
 * Rendering is coalesced into one animation frame: however many pushes and state changes arrive, the
 * page renders at most once a frame, and not at all while it is hidden (no frames run then; it renders
 * once when shown again). Charts, the overlay graph and the peer table are redrawn only when their
 * data changed.
 */
import type { ChannelInfo, ChannelStats, ChannelStatsSample, DirectoryUpdate } from '../../protocol/index.ts';
import { TimeChart, bitrateUnit, type ChartOptions } from '../../player/index.ts';
import { formatBytes, formatKbps, formatPercent, formatTimeOfDay, windowLabel } from '../../player/index.ts';
import type { IoSocket } from '../../player/index.ts';
import { KINDS, num, peersOf, renderOverlay, str, type OverlayPeer } from './overlay-graph.ts';

const STATUSES: readonly string[] = ['live', 'ended', 'idle'];
/** A missed directory push is asked for again at most this often. */
const REFETCH_MIN_MS = 5000;

type Conn = 'connecting' | 'online' | 'offline';

const $ = (id: string): HTMLElement => {
  const e = document.getElementById(id);
  if (!e) throw new Error(`#${id} is missing from the page`);
  return e;
};

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text?: string,
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function setText(e: HTMLElement, text: string): void {
  if (e.textContent !== text) e.textContent = text;
}

const state = {
  conn: 'connecting' as Conn,
  /** A directory arrived (from the socket or the REST fallback). */
  directoryKnown: false,
  socketDirectory: false,
  /** id → ChannelInfo, in directory order. */
  channels: new Map<string, ChannelInfo>(),
  /** id → ChannelStats (newest push). */
  stats: new Map<string, ChannelStats>(),
  selected: null as string | null,
  userPicked: false,
  lastUpdate: 0,
  hoverPeer: null as string | null,
  lastRefetch: 0,
  /** What the overlay graph and the peer table show (rebuilt only when it changes). */
  overlayKey: '',
  peerNodes: new Map<string, Element>(),
  peerRows: new Map<string, HTMLElement>(),
};

// ---------------------------------------------------------------- data in

function setDirectory(list: unknown, fromSocket: boolean): void {
  if (!Array.isArray(list)) return;
  if (!fromSocket && state.socketDirectory) return; // the REST answer may be older than the socket's
  if (fromSocket) state.socketDirectory = true;
  state.directoryKnown = true;
  const next = new Map<string, ChannelInfo>();
  for (const c of list as ChannelInfo[]) if (c && typeof c.id === 'string') next.set(c.id, c);
  state.channels = next;
  for (const id of [...state.stats.keys()]) if (!next.has(id)) state.stats.delete(id);
  ensureSelection();
  render();
}

/** Entries that changed (`upsert`) or left (`remove`) since the full list `watch` answered with. */
function applyDirectoryUpdate(update: DirectoryUpdate | undefined): void {
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

function setStats(list: ChannelStats[] | undefined): void {
  if (!Array.isArray(list)) return;
  let unknown = false;
  for (const s of list) {
    if (!s || typeof s.channel !== 'string') continue;
    state.stats.set(s.channel, s);
    if (!state.channels.has(s.channel)) unknown = true;
  }
  state.lastUpdate = Date.now();
  // A channel we have no directory entry for (a missed push): ask for the directory again.
  if (unknown && Date.now() - state.lastRefetch > REFETCH_MIN_MS) {
    state.lastRefetch = Date.now();
    state.socketDirectory = false;
    fetchDirectory();
  }
  ensureSelection();
  render();
}

function viewersOf(id: string): number {
  const s = state.stats.get(id);
  if (s?.current) return num(s.current.viewers);
  return num(state.channels.get(id)?.viewers);
}

/** Default: the channel with the most viewers, unless the operator picked one (or the URL names one). */
function ensureSelection(): void {
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
  let best = current ?? ids[0]!;
  for (const id of ids) if (viewersOf(id) > viewersOf(best)) best = id;
  state.selected = best;
}

function fetchDirectory(): void {
  fetch('/api/channels', { cache: 'no-store' })
    .then((r) => (r.ok ? (r.json() as Promise<unknown>) : Promise.reject(new Error(`HTTP ${r.status}`))))
    .then((list) => setDirectory(list, false))
    .catch(() => {
      if (state.conn !== 'online') setConn('offline');
    });
}

function setConn(conn: Conn): void {
  if (state.conn === conn) return;
  state.conn = conn;
  render();
}

/** The part of socket.io's client socket the dashboard uses besides the pages' `IoSocket`. */
type DashboardSocket = IoSocket & { connect(): void };

function connect(): void {
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
  const socket = window.io({ reconnectionDelay: 1000, reconnectionDelayMax: 5000 }) as DashboardSocket;
  const watch = (): void => {
    socket.emit('watch', {}, (ack: { ok: boolean; channels?: ChannelInfo[] } | undefined) => {
      if (ack?.ok) setDirectory(ack.channels, true);
      else window.setTimeout(() => socket.connected && watch(), 2000);
    });
  };
  socket.on('connect', () => {
    setConn('online');
    watch();
  });
  socket.on('connect_error', () => setConn('offline'));
  socket.on('disconnect', (reason: string) => {
    setConn('offline');
    // A server-side disconnect (tracker shutting down) is not retried by socket.io itself.
    if (reason === 'io server disconnect') window.setTimeout(() => socket.connect(), 2000);
  });
  socket.on('directory-update', applyDirectoryUpdate);
  socket.on('stats', setStats);
}

// ---------------------------------------------------------------- rendering

let renderQueued = false;
function render(): void {
  if (renderQueued) return;
  renderQueued = true;
  window.requestAnimationFrame(() => {
    renderQueued = false;
    renderConn();
    renderPicker();
    renderChannel();
  });
}

function renderConn(): void {
  $('conn').dataset.state = state.conn;
  setText(
    $('conn-text'),
    state.conn === 'online'
      ? 'connected'
      : state.conn === 'offline'
        ? 'tracker unreachable — retrying'
        : 'connecting…',
  );
  const banner = $('banner');
  const hasData = state.channels.size > 0;
  if (state.conn === 'offline') {
    banner.hidden = false;
    banner.dataset.kind = 'error';
    setText(
      banner,
      hasData
        ? 'Tracker unreachable — retrying… (showing the last data received)'
        : 'Tracker unreachable — retrying…',
    );
  } else if (state.conn === 'connecting' && !hasData) {
    banner.hidden = false;
    banner.dataset.kind = 'info';
    setText(banner, 'Connecting to the tracker…');
  } else banner.hidden = true;
  $('empty').hidden = !(state.directoryKnown && state.channels.size === 0 && state.conn === 'online');
  $('channel').classList.toggle('stale', state.conn === 'offline');
  setText($('updated'), state.lastUpdate ? `updated ${formatTimeOfDay(state.lastUpdate)}` : 'no data yet');
}

function renderPicker(): void {
  const select = $('channel-select') as HTMLSelectElement;
  $('picker').hidden = state.channels.size < 2;
  const want = [...state.channels.values()].map((c) => {
    const v = viewersOf(c.id);
    return { id: c.id, label: `${str(c.title) || c.id} · ${v} viewer${v === 1 ? '' : 's'}` };
  });
  const have = [...select.options];
  const same = have.length === want.length && have.every((o, i) => o.value === want[i]!.id);
  if (!same) {
    select.replaceChildren(
      ...want.map((w) => {
        const o = el('option', '', w.label);
        o.value = w.id;
        return o;
      }),
    );
  } else have.forEach((o, i) => setText(o, want[i]!.label));
  if (state.selected !== null && select.value !== state.selected) select.value = state.selected;
}

function renderChannel(): void {
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
  const win = windowLabel(num(st?.offloadWindowS ?? ch.offloadWindowS, 60) * 1000);
  setText($('kpi-viewers'), String(cur ? num(cur.viewers) : num(ch.viewers)));
  setText($('kpi-offload'), formatPercent(cur ? cur.offload : ch.offload, ' '));
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

  const history = Array.isArray(st?.history) ? st.history.filter((h) => h && Number.isFinite(h.at)) : [];
  for (const { figure, chart } of charts)
    if (chart.setData(history)) figure.dataset.samples = String(history.length);
  // The graph and the table are rebuilt only when the snapshot says something new.
  const key = JSON.stringify([
    ch.id,
    st?.overlay?.peers,
    st?.overlay?.links,
    st?.overlay?.flows,
    st?.overlay?.totalPeers,
    cur?.viewers,
  ]);
  if (key !== state.overlayKey) {
    state.overlayKey = key;
    state.peerNodes = renderOverlay(
      $('overlay') as unknown as SVGSVGElement,
      $('overlay-count'),
      st?.overlay,
      cur,
      state.hoverPeer,
    );
    renderPeers(st ? peersOf(st.overlay) : undefined);
  }
}

// ---------------------------------------------------------------- charts

type ChartDef = Pick<ChartOptions<ChannelStatsSample>, 'series' | 'unit' | 'fixedMax' | 'integer'> & {
  legendValue: (v: number | null) => string;
};

const CHARTS: Record<string, ChartDef> = {
  'chart-viewers': {
    series: [{ label: 'viewers', color: '--series-viewers', value: (s) => num(s.viewers), area: true }],
    unit: () => ({ div: 1, label: 'viewers' }),
    integer: true,
    legendValue: (v) => (v === null ? '—' : String(v)),
  },
  'chart-offload': {
    series: [
      {
        label: 'offload',
        color: '--series-offload',
        value: (s) => (typeof s.offload === 'number' ? s.offload * 100 : null),
        area: true,
      },
    ],
    unit: () => ({ div: 1, label: '% of segment bytes' }),
    fixedMax: 100,
    legendValue: (v) => (v === null ? '—' : formatPercent(v / 100, ' ')),
  },
  'chart-bitrate': {
    series: [
      { label: 'download', color: '--series-down', value: (s) => num(s.downloadKbps) },
      { label: 'upload', color: '--series-up', value: (s) => num(s.uploadKbps) },
    ],
    unit: bitrateUnit,
    legendValue: (v) => (v === null ? '—' : formatKbps(v)),
  },
};

const charts = Object.entries(CHARTS).map(([id, { legendValue, ...def }]) => {
  const figure = $(id);
  const chart = new TimeChart<ChannelStatsSample>(figure.querySelector('canvas')!, {
    ...def,
    legend: { element: figure.querySelector<HTMLElement>('.legend')!, value: legendValue },
  });
  return { figure, chart };
});

// ---------------------------------------------------------------- peer table

function renderPeers(list: OverlayPeer[] | undefined): void {
  const tbody = ($('peers') as HTMLTableElement).tBodies[0]!;
  const peers = [...(list ?? [])].sort(
    (a, b) => Number(b.firstTier) - Number(a.firstTier) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
  state.peerRows = new Map();
  const rows = peers.map((p) => {
    const tr = el('tr');
    tr.dataset.peerId = p.id;
    if (p.id === state.hoverPeer) tr.classList.add('hl');
    const idCell = el('td', 'id', p.id);
    idCell.title = p.id;
    const kind = el('td');
    kind.append(
      el('span', `kind-dot kind-${KINDS.includes(p.kind) ? p.kind : 'other'}`),
      document.createTextNode(str(p.kind)),
    );
    const buffer = num(p.bufferS);
    tr.append(
      idCell,
      kind,
      el('td', p.mode === 'relay' ? 'mode-relay' : '', str(p.mode)),
      el('td', '', str(p.rendition)),
      el('td', '', str(p.natType)),
      el('td', 'num', formatKbps(p.uploadKbps)),
      el('td', 'num', formatBytes(p.uploadedBytes)),
      el('td', `num${buffer < 2 ? ' low-buffer' : ''}`, `${buffer.toFixed(1)} s`),
      el('td', 'center', p.firstTier ? '✓' : '—'),
    );
    state.peerRows.set(p.id, tr);
    return tr;
  });
  tbody.replaceChildren(...rows);
  $('peers-empty').hidden = rows.length > 0;
  $('peer-count').textContent = list ? `${rows.length} shown` : '';
}

// ---------------------------------------------------------------- interaction

function highlight(id: string | null): void {
  if (state.hoverPeer === id) return;
  for (const m of [state.peerNodes, state.peerRows]) {
    if (state.hoverPeer !== null) m.get(state.hoverPeer)?.classList.remove('hl');
    if (id !== null) m.get(id)?.classList.add('hl');
  }
  state.hoverPeer = id;
}

const peerUnder = (e: Event, selector: string): string | null =>
  ((e.target as Element | null)?.closest?.(selector) as HTMLElement | SVGElement | null)?.dataset.peerId ??
  null;

$('overlay').addEventListener('mouseover', (e) => highlight(peerUnder(e, '.peer')));
$('overlay').addEventListener('mouseleave', () => highlight(null));
$('peers').addEventListener('mouseover', (e) => highlight(peerUnder(e, 'tr[data-peer-id]')));
$('peers').addEventListener('mouseleave', () => highlight(null));

$('channel-select').addEventListener('change', (e) => {
  const id = (e.target as HTMLSelectElement).value;
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
