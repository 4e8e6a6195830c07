/**
 * Home: the channel directory. "Live now" cards, "Recorded" broadcasts and offline channels, kept
 * current by socket.io (directory pushes, viewer counts from the stats pushes), or by polling the
 * REST directory every 5 s when socket.io is not available.
 */
import type { ChannelInfo, ChannelStats, DirectoryUpdate } from '../../../protocol/index.ts';
import { offloadText as channelOffloadText, offloadTitle } from './share.ts';
import {
  $,
  el,
  formatDate,
  formatViewers,
  getJson,
  hue,
  icon,
  recordingDate,
  watchUrl,
  type IoSocket,
} from './util.ts';

const POLL_MS = 5000;

let channels: ChannelInfo[] | undefined;
let pollTimer: ReturnType<typeof setInterval> | undefined;

function setConn(state: 'connecting' | 'online' | 'polling' | 'offline', text: string): void {
  const conn = $('conn');
  conn.dataset.state = state;
  $('conn-text').textContent = text;
}

function thumb(id: string, letter: string, ...overlays: Node[]): HTMLElement {
  const t = el(
    'div',
    { className: 'thumb' },
    el('span', { className: 'thumb-letter', text: letter }),
    ...overlays,
  );
  t.style.setProperty('--hue', String(hue(id)));
  return t;
}

/** The channel's offload over the tracker's window (the same figure and name as the dashboard's). */
function offloadText(c: ChannelInfo): string {
  return c.offload !== null ? channelOffloadText(c) : 'peer-to-peer delivery';
}

function liveCard(c: ChannelInfo): HTMLElement {
  const viewers = el('span', {
    className: 'thumb-viewers',
    text: formatViewers(c.viewers),
    attrs: { 'data-viewers': String(c.viewers) },
  });
  const badge = el('span', { className: 'badge status-live', text: 'Live' });
  const heights = c.renditions.map((r) => r.height).sort((a, b) => b - a);
  const meta = el('div', {
    className: 'card-meta',
    text: [c.id, ...heights.map((h) => `${h}p`)].join(' · '),
  });
  const sub = el('div', { className: 'card-sub', text: offloadText(c), attrs: { title: offloadTitle(c) } });
  const a = el(
    'a',
    { className: 'tile', attrs: { href: watchUrl(c.id), 'data-channel': c.id, 'data-status': c.status } },
    thumb(
      c.id,
      (c.title.trim()[0] ?? c.id[0] ?? '?').toUpperCase(),
      badge,
      viewers,
      el('span', { className: 'thumb-play' }, icon('play')),
    ),
    el(
      'div',
      { className: 'tile-body' },
      el('h3', { className: 'tile-title', text: c.title, attrs: { title: c.title } }),
      meta,
      sub,
    ),
  );
  return a;
}

function recordingCard(c: ChannelInfo, r: ChannelInfo['recordings'][number]): HTMLElement {
  const date = recordingDate(r.id);
  const when = el('time', { className: 'card-sub', text: formatDate(date) || r.id });
  if (date) when.setAttribute('datetime', date.toISOString());
  return el(
    'a',
    {
      className: 'tile',
      attrs: { href: watchUrl(c.id, r.id), 'data-channel': c.id, 'data-recording': r.id },
    },
    thumb(
      `${c.id}/${r.id}`,
      (r.title.trim()[0] ?? c.id[0] ?? '?').toUpperCase(),
      el('span', { className: 'badge status-ended', text: 'Recorded' }),
      el('span', { className: 'thumb-play' }, icon('play')),
    ),
    el(
      'div',
      { className: 'tile-body' },
      el('h3', { className: 'tile-title', text: r.title || c.title, attrs: { title: r.title || c.title } }),
      el('div', { className: 'card-meta', text: c.title === r.title ? c.id : `${c.title} · ${c.id}` }),
      when,
    ),
  );
}

function offlineItem(c: ChannelInfo): HTMLElement {
  return el(
    'li',
    {},
    el(
      'a',
      { attrs: { href: watchUrl(c.id), 'data-channel': c.id, 'data-status': c.status } },
      el('span', { className: `badge status-${c.status}`, text: c.status === 'idle' ? 'Offline' : 'Ended' }),
      el('span', { className: 'offline-title', text: c.title }),
      el('span', { className: 'muted', text: c.id }),
    ),
  );
}

function render(): void {
  const list = channels ?? [];
  const live = list
    .filter((c) => c.status === 'live')
    .sort((a, b) => b.viewers - a.viewers || a.title.localeCompare(b.title));
  const recordings = list
    .flatMap((c) => c.recordings.map((r) => ({ c, r })))
    .sort((a, b) => b.r.id.localeCompare(a.r.id));
  const offline = list.filter((c) => c.status !== 'live').sort((a, b) => a.title.localeCompare(b.title));

  $('loading').hidden = channels !== undefined;
  $('empty').hidden = channels === undefined || list.length > 0;
  $('live-section').hidden = channels === undefined || list.length === 0;
  $('live-count').textContent = live.length ? String(live.length) : '';
  $('live-grid').replaceChildren(...live.map(liveCard));
  $('live-none').hidden = live.length > 0;
  $('recorded-section').hidden = recordings.length === 0;
  $('recorded-grid').replaceChildren(...recordings.slice(0, 60).map(({ c, r }) => recordingCard(c, r)));
  $('offline-section').hidden = offline.length === 0;
  $('offline-list').replaceChildren(...offline.map(offlineItem));
}

/** Viewer counts and offload from the tracker's stats pushes, updated in place (no re-render). */
function setViewers(stats: ChannelStats[]): void {
  if (!channels) return;
  for (const s of stats) {
    const c = channels.find((x) => x.id === s.channel);
    if (!c) continue;
    c.viewers = s.current.viewers;
    // The same figure as the directory's: null (nothing received in the window) is shown as such,
    // not as the last known value.
    c.offload = s.current.offload;
    if (typeof s.offloadWindowS === 'number') c.offloadWindowS = s.offloadWindowS;
    const tile = document.querySelector<HTMLElement>(`#live-grid .tile[data-channel="${CSS.escape(c.id)}"]`);
    if (!tile) continue;
    const viewers = tile.querySelector<HTMLElement>('.thumb-viewers');
    if (viewers && viewers.dataset.viewers !== String(c.viewers)) {
      viewers.textContent = formatViewers(c.viewers);
      viewers.dataset.viewers = String(c.viewers);
    }
    const sub = tile.querySelector<HTMLElement>('.card-sub');
    const text = offloadText(c);
    if (sub && sub.textContent !== text) sub.textContent = text;
  }
}

async function poll(): Promise<void> {
  try {
    const res = await getJson<ChannelInfo[]>('/api/channels');
    if (res.status !== 200 || !Array.isArray(res.body)) throw new Error(`HTTP ${res.status}`);
    channels = res.body;
    render();
    if (!socket?.connected) setConn('polling', 'updating every 5 s');
  } catch {
    setConn('offline', 'tracker unreachable');
  }
}

function startPolling(): void {
  if (pollTimer) return;
  void poll();
  pollTimer = setInterval(() => void poll(), POLL_MS);
}

function stopPolling(): void {
  clearInterval(pollTimer);
  pollTimer = undefined;
}

let socket: IoSocket | undefined;

function connect(): void {
  if (typeof window.io !== 'function') {
    startPolling();
    return;
  }
  socket = window.io({ reconnectionDelay: 1000, reconnectionDelayMax: 5000 });
  socket.on('connect', () => {
    // Room membership is per connection: ask again after every reconnect.
    socket!.emit('watch', {}, (ack: { ok: boolean; channels?: ChannelInfo[] }) => {
      if (!ack?.ok || !Array.isArray(ack.channels)) return startPolling();
      stopPolling();
      channels = ack.channels;
      render();
      setConn('online', 'live updates');
    });
  });
  socket.on('directory-update', (update: DirectoryUpdate) => {
    if (!channels || !update) return; // the full list (watch's answer) comes first
    const byId = new Map(channels.map((c) => [c.id, c]));
    for (const c of Array.isArray(update.upsert) ? update.upsert : []) if (c?.id) byId.set(c.id, c);
    for (const id of Array.isArray(update.remove) ? update.remove : []) byId.delete(id);
    channels = [...byId.values()];
    render();
  });
  socket.on('stats', (stats: ChannelStats[]) => {
    if (Array.isArray(stats)) setViewers(stats);
  });
  socket.on('disconnect', () => {
    setConn('connecting', 'reconnecting…');
    startPolling();
  });
  socket.on('connect_error', () => startPolling());
}

export function home(): void {
  render();
  connect();
  // Without any answer in a few seconds, fall back to REST so the page is never stuck loading.
  setTimeout(() => {
    if (channels === undefined) startPolling();
  }, 3000);
}
