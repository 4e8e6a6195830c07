/**
 * What the page plays (from its URL) and what it says about it: the title, the status badge, the
 * meta line (viewers, renditions, the channel's offload), the list of recordings, and (watch page) the
 * share link and embed snippet with their Copy buttons.
 */
import type { ChannelInfo } from '../../../protocol/index.ts';
import { offloadText, offloadTitle } from './share.ts';
import {
  $,
  el,
  formatDate,
  formatViewers,
  Listeners,
  opt,
  recordingDate,
  setData,
  setHidden,
  setText,
  setTitle,
  watchUrl,
} from './util.ts';

/** The channel (or one of its recordings) a watch or embed page plays. */
export interface WatchPage {
  embed: boolean;
  channel: string;
  recording: string | undefined;
}

/** `/watch/<channel>?recording=<id>`, `/embed/<channel>`; undefined when the URL names no channel. */
export function pageFromUrl(embed: boolean): WatchPage | undefined {
  const m = /^\/(?:watch|embed)\/([^/]+)\/?$/.exec(location.pathname);
  if (!m) return undefined;
  let channel: string;
  try {
    channel = decodeURIComponent(m[1]!);
  } catch {
    return undefined;
  }
  const recording = new URLSearchParams(location.search).get('recording') ?? undefined;
  return { embed, channel, recording: recording || undefined };
}

export class ChannelInfoView {
  readonly #page: WatchPage;
  readonly #listeners = new Listeners();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(page: WatchPage) {
    this.#page = page;
    document.title = `${page.channel} — PeerTV`;
    const external = opt<HTMLAnchorElement>('external-link');
    if (external) external.href = watchUrl(page.channel, page.recording);
    if (opt('share-link')) this.#fillShare();
  }

  render(info: ChannelInfo): void {
    const page = this.#page;
    const rec =
      page.recording !== undefined ? info.recordings.find((r) => r.id === page.recording) : undefined;
    const title = rec ? rec.title || info.title : info.title;
    if (document.title !== `${title} — PeerTV`) document.title = `${title} — PeerTV`;
    const titleEl = opt('title');
    if (titleEl) setText(titleEl, title);
    const embedTitle = opt('embed-title');
    if (embedTitle) setText(embedTitle, title);
    const badge = opt('status-badge');
    if (badge) {
      const [cls, text] = rec
        ? ['status-ended', 'Recorded']
        : info.status === 'live'
          ? ['status-live', 'Live']
          : info.status === 'ended'
            ? ['status-ended', 'Ended']
            : ['status-idle', 'Offline'];
      if (badge.className !== `badge ${cls}`) badge.className = `badge ${cls}`;
      setHidden(badge, false);
      setText(badge, text);
      setData(badge, 'status', rec ? 'recording' : info.status);
    }
    const meta = opt('meta');
    if (meta) {
      const parts: string[] = [info.id];
      if (rec) parts.push(`recorded ${formatDate(recordingDate(rec.id))}`);
      else if (info.status === 'live') parts.push(formatViewers(info.viewers));
      parts.push(
        [...info.renditions]
          .sort((a, b) => b.height - a.height)
          .map((r) => r.name)
          .join(', '),
      );
      const offload = !rec && info.status === 'live' && info.offload !== null;
      if (offload) parts.push(offloadText(info));
      const text = parts.filter(Boolean).join(' · ');
      setText(meta, text);
      setTitle(meta, offload ? offloadTitle(info) : '');
      setData(meta, 'viewers', String(info.viewers));
    }
    this.#renderRecordingList(info);
  }

  #renderRecordingList(info: ChannelInfo): void {
    const list = opt('recording-list');
    const page = this.#page;
    if (!list) return;
    // What the list shows, to build it only when that changes (the info is polled every few seconds).
    const want = JSON.stringify([
      info.status === 'live' && page.recording !== undefined ? info.title : null,
      page.recording ?? null,
      info.recordings.map((r) => [r.id, r.title || info.title]),
    ]);
    if (list.dataset.want === want) return;
    list.dataset.want = want;
    const items: HTMLElement[] = [];
    if (info.status === 'live' && page.recording !== undefined) {
      items.push(
        el(
          'li',
          {},
          el(
            'a',
            { className: 'rec-item', attrs: { href: watchUrl(page.channel) } },
            el('span', { className: 'badge status-live', text: 'Live' }),
            el('span', { className: 'rec-title', text: info.title }),
          ),
        ),
      );
    }
    for (const r of [...info.recordings].sort((a, b) => b.id.localeCompare(a.id)).slice(0, 50)) {
      const current = r.id === page.recording;
      const a = el(
        'a',
        { className: 'rec-item', attrs: { href: watchUrl(page.channel, r.id), 'data-recording': r.id } },
        el('span', { className: 'rec-title', text: r.title || info.title }),
        el('span', { className: 'rec-date', text: formatDate(recordingDate(r.id)) || r.id }),
      );
      if (current) a.setAttribute('aria-current', 'page');
      items.push(el('li', {}, a));
    }
    const key = items.map((i) => i.outerHTML).join('');
    if (list.dataset.key !== key) {
      list.dataset.key = key;
      list.replaceChildren(...items);
    }
    const side = opt('side');
    if (side) side.hidden = items.length === 0;
  }

  #fillShare(): void {
    const page = this.#page;
    const q = page.recording !== undefined ? `?recording=${encodeURIComponent(page.recording)}` : '';
    const link = `${location.origin}${watchUrl(page.channel, page.recording)}`;
    const embedSrc = `${location.origin}/embed/${encodeURIComponent(page.channel)}${q}`;
    const snippet = `<iframe src="${embedSrc}" width="640" height="360" title="PeerTV: ${encodeURIComponent(page.channel)}" allow="autoplay; fullscreen; picture-in-picture" allowfullscreen style="border:0"></iframe>`;
    ($('share-link') as HTMLInputElement).value = link;
    ($('embed-code') as HTMLTextAreaElement).value = snippet;
    for (const b of document.querySelectorAll<HTMLButtonElement>('[data-copy]')) {
      this.#listeners.on(b, 'click', () => {
        const target = document.getElementById(b.dataset.copy!) as
          HTMLInputElement | HTMLTextAreaElement | null;
        if (!target) return;
        target.select();
        const done = () => {
          const old = b.textContent;
          b.textContent = 'Copied';
          const timer = setTimeout(() => {
            this.#timers.delete(timer);
            b.textContent = old;
          }, 1500);
          this.#timers.add(timer);
        };
        if (navigator.clipboard)
          void navigator.clipboard
            .writeText(target.value)
            .then(done, () => document.execCommand('copy') && done());
        else if (document.execCommand('copy')) done();
      });
    }
  }

  destroy(): void {
    this.#listeners.removeAll();
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }
}
