/**
 * The watch and embed pages: one channel (or one of its recordings) in a <video> with custom controls,
 * state overlays, notices as banners, a quality menu, the LIVE badge and latency, a seek bar with the
 * download progress for recordings, and (watch page) the stats panel, channel info and share snippet.
 *
 * The page reads the channel from its URL (`/watch/<channel>?recording=<id>`, `/embed/<channel>`),
 * plays it with `PeerTV.attach` from `/peertv.js`, and exposes the player as `window.peertv`.
 */
import type { Level, PeerTVPlayer, PlayerState, PlayerStats } from '../api.ts';
import type { ChannelInfo } from '../../../protocol/tracker.ts';
import { RateChart } from './chart.ts';
import { OwnShare, offloadText, offloadTitle, windowLabel } from './share.ts';
import { OFFLOAD_WINDOW_MS } from '../../../protocol/figures.ts';
import {
  $,
  el,
  formatBytes,
  formatClock,
  formatDate,
  formatKbps,
  formatPercent,
  formatViewers,
  getJson,
  icon,
  recordingDate,
  watchUrl,
} from './util.ts';

const INFO_POLL_MS = 5000;
const CONTROLS_HIDE_MS = 3000;

/*
 * The page's own CPU: it renders from events (the player's `state` and once-a-second `stats`, the
 * video's events), writes the DOM only where a value changed, renders nothing while the page is hidden
 * (it catches up when shown), updates the stats panel and its chart only while the panel is open, and
 * keeps no timer running that has nothing to do (the channel-info poll sleeps while the page is hidden,
 * the controls' auto-hide timer stops until the next interaction).
 */

/** Sets an element's text only when it changes (a write with the same text still costs a layout). */
function setText(e: HTMLElement, text: string): void {
  if (e.textContent !== text) e.textContent = text;
}

function setHidden(e: HTMLElement, hidden: boolean): void {
  if (e.hidden !== hidden) e.hidden = hidden;
}

function setData(e: HTMLElement, key: string, value: string): void {
  if (e.dataset[key] !== value) e.dataset[key] = value;
}

function setTitle(e: HTMLElement, title: string): void {
  if (e.title !== title) e.title = title;
}

const pageHidden = () => document.visibilityState === 'hidden';

type OverlayState = 'none' | 'loading' | 'offline' | 'ended' | 'not-found' | 'error';

interface Page {
  embed: boolean;
  channel: string;
  recording: string | undefined;
}

function pageFromUrl(embed: boolean): Page | undefined {
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

const opt = <T extends HTMLElement>(id: string) => document.getElementById(id) as T | null;

/** The newest recording of a channel (ids are start times, so they sort by date). */
function newestRecording(info: ChannelInfo | undefined): ChannelInfo['recordings'][number] | undefined {
  return [...(info?.recordings ?? [])].sort((a, b) => b.id.localeCompare(a.id))[0];
}

export function watch(embed: boolean): void {
  const page = pageFromUrl(embed);
  const video = $('video') as HTMLVideoElement;
  const playerEl = $('player');
  const ui = new WatchUi(page, video, playerEl);
  ui.start();
}

class WatchUi {
  readonly page: Page | undefined;
  readonly video: HTMLVideoElement;
  readonly playerEl: HTMLElement;
  player: PeerTVPlayer | undefined;
  info: ChannelInfo | undefined;
  overlay: OverlayState = 'loading';
  /** The tracker reported the broadcast over while this page plays it: show "ended" once drained. */
  endedPending = false;
  played = false;
  levels: Level[] = [];
  seeking = false;
  readonly banners = new Map<string, string>();
  readonly chart: RateChart | undefined;
  #hideTimer: ReturnType<typeof setTimeout> | undefined;
  #lastPointer = 'mouse';
  #bannerTimer: ReturnType<typeof setTimeout> | undefined;
  #heldKey = '';
  #lastStats: PlayerStats | undefined;
  /** The overlay shows its default texts (which name the channel: refreshed once its title is known). */
  #overlayDefault = true;
  /** This player's own share of segment bytes from peers over the trailing window. */
  readonly ownShare = new OwnShare();
  #ownShareNow: number | null = null;
  #statsOpen = false;
  #statsCells: Map<string, HTMLElement> | undefined;
  #pollTimer: ReturnType<typeof setTimeout> | undefined;
  /** A poll came due while the page was hidden: poll when it is shown again. */
  #pollDue = false;
  #latencyText: Text | undefined;
  #bufferedKey = '';

  constructor(page: Page | undefined, video: HTMLVideoElement, playerEl: HTMLElement) {
    this.page = page;
    this.video = video;
    this.playerEl = playerEl;
    const canvas = opt<HTMLCanvasElement>('stats-chart');
    this.chart = canvas ? new RateChart(canvas) : undefined;
  }

  get live(): boolean {
    return this.page?.recording === undefined;
  }

  start(): void {
    const page = this.page;
    this.#wireControls();
    if (!page) {
      this.setOverlay('not-found', 'Nothing to play here', 'This address does not name a channel.');
      return;
    }
    this.playerEl.dataset.live = String(this.live);
    $('timeline').hidden = this.live;
    $('live-group').hidden = !this.live;
    $('time').hidden = this.live;
    const share = opt('share-link');
    if (share) this.#fillShare();
    const external = opt<HTMLAnchorElement>('external-link');
    if (external) external.href = watchUrl(page.channel, page.recording);
    document.title = `${page.channel} — PeerTV`;
    document.addEventListener('visibilitychange', () => this.#onVisibility());
    this.attach();
    void this.#pollAndSchedule();
  }

  /** Polls the channel's directory entry now, then again in INFO_POLL_MS unless the page is hidden. */
  async #pollAndSchedule(): Promise<void> {
    clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
    this.#pollDue = false;
    await this.pollInfo();
    clearTimeout(this.#pollTimer);
    this.#pollTimer = setTimeout(() => {
      this.#pollTimer = undefined;
      if (pageHidden()) this.#pollDue = true;
      else void this.#pollAndSchedule();
    }, INFO_POLL_MS);
  }

  #onVisibility(): void {
    if (pageHidden()) {
      this.chart?.setShown(false);
      return;
    }
    // Catch up with what happened while hidden.
    if (this.#lastStats) this.#renderStatsEvent(this.#lastStats);
    this.chart?.setShown(this.#statsOpen);
    if (this.#pollDue) void this.#pollAndSchedule();
  }

  // ------------------------------------------------------------------ player

  attach(): void {
    const page = this.page!;
    const PeerTV = window.PeerTV;
    if (!PeerTV) {
      this.setOverlay('error', 'The player did not load', 'peertv.js is missing: reload the page.');
      return;
    }
    this.player?.destroy();
    this.played = false;
    this.endedPending = false;
    this.levels = [];
    this.ownShare.reset();
    this.banners.clear();
    this.#renderBanner();
    this.#renderQualityMenu();
    this.setOverlay('loading');
    let originUrl: string | undefined;
    try {
      originUrl = localStorage.getItem(`peertv:origin:${page.channel}`) ?? undefined;
    } catch {
      originUrl = undefined;
    }
    // `?p2p=0`: from the origin only; `?candidates=loopback`: only 127.0.0.1 WebRTC candidates.
    const query = new URLSearchParams(location.search);
    const player = PeerTV.attach(this.video, {
      tracker: location.origin,
      channel: page.channel,
      ...(page.recording !== undefined && { recording: page.recording }),
      ...(originUrl && { originUrl }),
      ...(query.get('p2p') === '0' && { p2p: false }),
      ...(query.get('candidates') === 'loopback' && { loopbackOnly: true }),
    });
    this.player = player;
    window.peertv = player;
    player.on('state', (s) => this.onState(s));
    player.on('notice', (n) => this.onNotice(n.code, n.message));
    player.on('levels', (levels) => {
      this.levels = levels;
      this.#renderQualityMenu();
    });
    player.on('level-switched', () => this.#renderQualityMenu());
    player.on('stats', (s) => this.onStats(s));
  }

  onState(s: PlayerState): void {
    const v = this.video;
    this.playerEl.dataset.state = s;
    this.playerEl.classList.toggle('buffering', s === 'stalled' || (s === 'loading' && this.played));
    this.#renderPlayButton();
    switch (s) {
      case 'playing':
        this.played = true;
        if (this.overlay === 'loading') this.setOverlay('none');
        $('big-play').hidden = true;
        this.#pokeControls();
        break;
      case 'paused':
        if (!this.played && this.overlay === 'loading') {
          // Autoplay with sound was refused: start muted and offer to unmute, else wait for a click.
          v.muted = true;
          v.play().then(
            () => {
              $('unmute-hint').hidden = false;
            },
            () => {
              this.setOverlay('none');
              $('big-play').hidden = false;
            },
          );
        } else if (this.overlay === 'none') {
          $('big-play').hidden = false;
        }
        this.#pokeControls();
        break;
      case 'ended':
        if (!this.live) $('big-play').hidden = false;
        else this.showEnded();
        break;
      case 'offline':
        this.setOverlay('offline');
        break;
      case 'error':
        // A notice says why (and may pick a more precise overlay); keep that one.
        if (this.overlay === 'loading' || this.overlay === 'none') this.setOverlay('error');
        break;
    }
    if (this.endedPending && (s === 'stalled' || s === 'ended' || s === 'error')) this.showEnded();
  }

  onNotice(code: string, message: string): void {
    const failed = this.player?.state === 'error' || this.player?.state === 'offline';
    switch (code) {
      case 'unknown-channel':
        this.showNotFound();
        break;
      case 'channel-offline':
        this.setOverlay('offline');
        break;
      case 'broadcast-ended':
        this.showEnded();
        break;
      case 'tracker-unreachable':
        if (failed)
          this.setOverlay(
            'error',
            'Tracker unreachable',
            'The channel directory cannot be reached. Playback starts when it is back.',
          );
        else this.#banner(code, 'Tracker unreachable — playing from the origin');
        break;
      case 'webrtc-unavailable':
        this.#banner(code, 'WebRTC unavailable — playing from the origin');
        break;
      case 'media-error':
        this.#banner(code, `Playback problem (${message}) — recovering`, 8000);
        break;
      default:
        if (failed) this.setOverlay('error', 'Playback failed', message);
    }
  }

  onStats(s: PlayerStats): void {
    this.#lastStats = s;
    const at = Date.now();
    this.#ownShareNow = this.ownShare.push(at, s.httpBytes, s.p2pBytes);
    this.chart?.push({
      at,
      downloadKbps: s.downloadKbps,
      uploadKbps: s.uploadKbps,
      ownShare: this.#ownShareNow,
    });
    if (!pageHidden()) this.#renderStatsEvent(s);
    if (this.endedPending && this.live && s.bufferS < 0.3 && s.state !== 'playing') this.showEnded();
  }

  /** What a `stats` event changes on screen. */
  #renderStatsEvent(s: PlayerStats): void {
    if (this.#statsOpen) this.#renderStats(s);
    this.#renderLive(s);
    this.#renderQualityLabel(s);
    if (!this.live) this.#renderHeld();
  }

  showEnded(): void {
    if (!this.live) return;
    this.setOverlay('ended');
  }

  /** The tracker has no such channel (the player's `unknown-channel`, or the directory's 404). */
  showNotFound(): void {
    this.setOverlay(
      'not-found',
      'Channel not found',
      `There is no channel “${this.page?.channel ?? ''}” on this tracker.`,
    );
  }

  // ------------------------------------------------------------------ tracker's channel info

  async pollInfo(): Promise<void> {
    const page = this.page!;
    let res: Awaited<ReturnType<typeof getJson<ChannelInfo>>>;
    try {
      res = await getJson<ChannelInfo>(`/api/channels/${encodeURIComponent(page.channel)}`);
    } catch {
      return; // the player's notices say what this means for playback
    }
    if (res.status === 404) {
      this.player?.destroy();
      this.player = undefined;
      this.showNotFound();
      return;
    }
    const info = res.body;
    if (res.status !== 200 || !info || typeof info.id !== 'string') return;
    const before = this.info;
    this.info = info;
    this.ownShare.windowMs = (info.offloadWindowS ?? OFFLOAD_WINDOW_MS / 1000) * 1000;
    try {
      if (info.originUrl) localStorage.setItem(`peertv:origin:${page.channel}`, info.originUrl);
    } catch {
      /* storage may be disabled */
    }
    this.#renderInfo();
    if (
      this.#overlayDefault &&
      (this.overlay === 'offline' || this.overlay === 'ended') &&
      before?.title !== info.title
    )
      this.setOverlay(this.overlay);
    if (page.recording !== undefined) {
      if (!info.recordings.some((r) => r.id === page.recording)) {
        this.player?.destroy();
        this.player = undefined;
        this.setOverlay('not-found', 'Recording not found', 'This recording does not exist (any more).');
      }
      return;
    }
    if (info.status === 'live') {
      // Back on air after being offline or ended, or registered (again: a tracker restarted before its
      // source registered) after "not found": start over.
      if (
        this.overlay === 'offline' ||
        this.overlay === 'ended' ||
        this.overlay === 'not-found' ||
        (this.overlay === 'error' && before?.status !== 'live')
      )
        this.attach();
      return;
    }
    if (info.status === 'ended') {
      // Playing: let the buffer play out first (the player also says so once the stream ends).
      const st = this.player?.state;
      if (this.overlay === 'ended') {
        /* already */
      } else if (this.played && this.overlay === 'none' && (st === 'playing' || st === 'paused'))
        this.endedPending = true;
      else this.showEnded();
    } else if (info.status === 'idle' && this.overlay !== 'offline') {
      this.player?.destroy();
      this.player = undefined;
      this.setOverlay('offline');
    }
    if (this.overlay === 'ended') this.#renderOverlayActions();
  }

  // ------------------------------------------------------------------ overlays and banners

  setOverlay(state: OverlayState, title?: string, text?: string): void {
    this.overlay = state;
    this.#overlayDefault = title === undefined && text === undefined;
    const o = $('state-overlay');
    o.dataset.state = state;
    this.playerEl.dataset.overlay = state;
    const share = opt('share');
    if (share) share.hidden = state === 'not-found';
    o.hidden = state === 'none';
    if (state !== 'none') $('big-play').hidden = true;
    const name = this.info?.title ?? this.page?.channel ?? '';
    const texts: Record<OverlayState, [string, string]> = {
      none: ['', ''],
      loading: ['Loading…', ''],
      offline: [
        'Channel offline',
        `${name} is not broadcasting right now. This page starts playing when it goes live.`,
      ],
      ended: ['Broadcast ended', `${name} is not live any more.`],
      'not-found': ['Not found', ''],
      error: ['Playback failed', 'Something went wrong while loading the stream.'],
    };
    $('state-title').textContent = title ?? texts[state][0];
    $('state-text').textContent = text ?? texts[state][1];
    if (state === 'ended' || state === 'offline') {
      this.video.pause();
      this.playerEl.classList.remove('buffering');
    }
    this.#renderOverlayActions();
    this.#pokeControls();
  }

  #renderOverlayActions(): void {
    const actions = $('state-actions');
    const state = this.overlay;
    const items: HTMLElement[] = [];
    if (state === 'ended') {
      const rec = newestRecording(this.info);
      if (rec && this.page) {
        const a = el('a', {
          className: 'btn btn-primary',
          attrs: {
            // The embed stays an embed: the recording plays in the same frame.
            href: this.page.embed
              ? watchUrl(this.page.channel, rec.id).replace(/^\/watch\//, '/embed/')
              : watchUrl(this.page.channel, rec.id),
            id: 'ended-recording-link',
          },
        });
        a.append(icon('play'), el('span', { text: 'Watch the recording' }));
        items.push(a);
      } else
        items.push(el('span', { className: 'state-note', text: 'The recording will appear here shortly.' }));
    }
    if (state === 'error') {
      const retry = el('button', {
        className: 'btn btn-primary',
        text: 'Retry',
        attrs: { type: 'button', id: 'retry' },
      });
      retry.addEventListener('click', () => this.attach());
      items.push(retry);
    }
    if (state === 'offline' || state === 'ended' || state === 'not-found')
      items.push(
        el('a', {
          className: 'btn',
          text: 'Browse channels',
          attrs: this.page?.embed ? { href: '/', target: '_blank', rel: 'noopener' } : { href: '/' },
        }),
      );
    // Only rebuild when the content changes (keeps focus and hover stable).
    const key = items.map((i) => i.outerHTML).join('');
    if (actions.dataset.key !== key) {
      actions.dataset.key = key;
      actions.replaceChildren(...items);
    }
    $('state-spinner').hidden = state !== 'loading';
  }

  #banner(code: string, text: string, autoHideMs = 0): void {
    this.banners.delete(code);
    this.banners.set(code, text);
    this.#renderBanner();
    if (autoHideMs) {
      clearTimeout(this.#bannerTimer);
      this.#bannerTimer = setTimeout(() => {
        this.banners.delete(code);
        this.#renderBanner();
      }, autoHideMs);
    }
  }

  #renderBanner(): void {
    const b = $('banner');
    const last = [...this.banners].at(-1);
    b.hidden = !last;
    b.dataset.code = last?.[0] ?? '';
    $('banner-text').textContent = last?.[1] ?? '';
  }

  // ------------------------------------------------------------------ controls

  #wireControls(): void {
    const v = this.video;
    const play = $('play-button');
    play.addEventListener('click', () => this.#togglePlay());
    $('big-play').addEventListener('click', () => this.#togglePlay());
    v.addEventListener('play', () => this.#renderPlayButton());
    v.addEventListener('pause', () => this.#renderPlayButton());
    v.addEventListener('click', () => {
      if (this.#lastPointer === 'touch' && this.playerEl.dataset.controls === 'hidden')
        return this.#pokeControls();
      this.#togglePlay();
    });
    v.addEventListener('dblclick', () => this.#toggleFullscreen());

    // Volume (remembered).
    const volume = $('volume') as HTMLInputElement;
    try {
      const saved = Number(localStorage.getItem('peertv:volume'));
      if (localStorage.getItem('peertv:volume') !== null && saved >= 0 && saved <= 1) v.volume = saved;
      if (localStorage.getItem('peertv:muted') === 'true') v.muted = true;
    } catch {
      /* storage may be disabled */
    }
    volume.addEventListener('input', () => {
      v.volume = Number(volume.value);
      v.muted = v.volume === 0;
    });
    $('mute-button').addEventListener('click', () => {
      v.muted = !v.muted;
      if (!v.muted && v.volume === 0) v.volume = 0.5;
    });
    $('unmute-hint').addEventListener('click', () => {
      v.muted = false;
      if (v.volume === 0) v.volume = 0.5;
    });
    v.addEventListener('volumechange', () => {
      this.#renderVolume();
      try {
        localStorage.setItem('peertv:volume', String(v.volume));
        localStorage.setItem('peertv:muted', String(v.muted));
      } catch {
        /* storage may be disabled */
      }
    });
    this.#renderVolume();

    // Fullscreen.
    $('fullscreen-button').addEventListener('click', () => this.#toggleFullscreen());
    document.addEventListener('fullscreenchange', () => this.#renderFullscreen());
    this.#renderFullscreen();

    // Live edge.
    $('go-live').addEventListener('click', () => this.#goLive());
    $('live-badge').addEventListener('click', () => this.#goLive());

    // Quality menu.
    const qb = $('quality-button');
    const menu = $('quality-menu');
    qb.addEventListener('click', (e) => {
      e.stopPropagation();
      this.#setMenu(menu.hidden !== false);
    });
    document.addEventListener('click', (e) => {
      if (!menu.hidden && !menu.contains(e.target as Node)) this.#setMenu(false);
    });
    menu.addEventListener('click', (e) => {
      const item = (e.target as HTMLElement).closest<HTMLElement>('[data-level]');
      if (!item || !this.player) return;
      const level = item.dataset.level === 'auto' ? -1 : Number(item.dataset.level);
      this.player.setLevel(level);
      this.#setMenu(false);
      this.#renderQualityMenu();
      qb.focus();
    });
    menu.addEventListener('keydown', (e) => {
      const items = [...menu.querySelectorAll<HTMLElement>('[data-level]')];
      const i = items.indexOf(document.activeElement as HTMLElement);
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        items[(i + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length]?.focus();
      } else if (e.key === 'Escape') {
        this.#setMenu(false);
        qb.focus();
      }
    });

    // Stats panel.
    const statsButton = opt('stats-button');
    const panel = opt('stats-panel');
    if (statsButton && panel) {
      statsButton.addEventListener('click', () => this.#setStatsOpen(panel.hidden !== false));
      opt('stats-close')?.addEventListener('click', () => this.#setStatsOpen(false));
    }

    // Seek bar (recordings).
    const seek = $('seek') as HTMLInputElement;
    seek.addEventListener('input', () => {
      this.seeking = true;
      this.#renderTime(Number(seek.value));
    });
    seek.addEventListener('change', () => {
      this.seeking = false;
      if (Number.isFinite(v.duration)) v.currentTime = Number(seek.value);
      this.#pokeControls();
    });
    if (!this.live)
      for (const ev of ['timeupdate', 'durationchange', 'progress', 'seeked', 'loadedmetadata'])
        v.addEventListener(ev, () => this.#renderTimeline());

    // Banner.
    $('banner-close').addEventListener('click', () => {
      const code = $('banner').dataset.code;
      if (code) this.banners.delete(code);
      this.#renderBanner();
    });

    // Auto-hiding controls.
    const p = this.playerEl;
    p.addEventListener('pointerdown', (e) => (this.#lastPointer = e.pointerType), true);
    p.addEventListener('pointermove', (e) => {
      if (e.pointerType === 'mouse') this.#pokeControls();
    });
    p.addEventListener('pointerleave', () => this.#scheduleHide(600));
    p.addEventListener('focusin', () => this.#pokeControls());
    // Focus leaving the controls may end what kept them shown (the hide timer does not poll for it).
    p.addEventListener('focusout', () => this.#scheduleHide(CONTROLS_HIDE_MS));
    $('controls').addEventListener('pointerdown', () => this.#pokeControls());

    // Keyboard.
    document.addEventListener('keydown', (e) => {
      const t = e.target as HTMLElement;
      if (e.ctrlKey || e.metaKey || e.altKey || t.closest('input, textarea, select, [contenteditable]'))
        return;
      const onButton = t.closest('button, a');
      switch (e.key) {
        case ' ':
        case 'k':
          if (e.key === ' ' && onButton) return;
          e.preventDefault();
          this.#togglePlay();
          break;
        case 'm':
          v.muted = !v.muted;
          break;
        case 'f':
          this.#toggleFullscreen();
          break;
        case 'ArrowLeft':
        case 'ArrowRight':
          if (this.live || !Number.isFinite(v.duration)) return;
          e.preventDefault();
          v.currentTime = Math.max(0, Math.min(v.duration, v.currentTime + (e.key === 'ArrowLeft' ? -5 : 5)));
          break;
        default:
          return;
      }
      this.#pokeControls();
    });
    this.#pokeControls();
  }

  #togglePlay(): void {
    const v = this.video;
    if (this.overlay !== 'none' && this.overlay !== 'loading') return;
    if (v.paused || v.ended) {
      $('big-play').hidden = true;
      void v.play().catch(() => ($('big-play').hidden = false));
    } else v.pause();
  }

  #goLive(): void {
    if (!this.player || !this.live) return;
    this.player.goLive();
    $('big-play').hidden = true;
  }

  #toggleFullscreen(): void {
    const doc = document as Document & { webkitFullscreenElement?: Element };
    if (doc.fullscreenElement ?? doc.webkitFullscreenElement) {
      void document.exitFullscreen?.().catch(() => {});
      return;
    }
    const p = this.playerEl as HTMLElement & { webkitRequestFullscreen?: () => void };
    const v = this.video as HTMLVideoElement & { webkitEnterFullscreen?: () => void };
    if (p.requestFullscreen) void p.requestFullscreen().catch(() => v.webkitEnterFullscreen?.());
    else if (p.webkitRequestFullscreen) p.webkitRequestFullscreen();
    else v.webkitEnterFullscreen?.();
  }

  #renderFullscreen(): void {
    const on = document.fullscreenElement === this.playerEl;
    const b = $('fullscreen-button');
    b.replaceChildren(icon(on ? 'fullscreen-exit' : 'fullscreen'));
    b.setAttribute('aria-label', on ? 'Exit full screen (f)' : 'Full screen (f)');
    b.title = on ? 'Exit full screen (f)' : 'Full screen (f)';
  }

  #renderPlayButton(): void {
    const paused = this.video.paused || this.video.ended;
    const b = $('play-button');
    if (b.dataset.paused === String(paused)) return;
    b.dataset.paused = String(paused);
    b.replaceChildren(icon(paused ? 'play' : 'pause'));
    b.setAttribute('aria-label', paused ? 'Play (k)' : 'Pause (k)');
    b.title = paused ? 'Play (k)' : 'Pause (k)';
    this.playerEl.dataset.paused = String(paused);
  }

  #renderVolume(): void {
    const v = this.video;
    const muted = v.muted || v.volume === 0;
    const b = $('mute-button');
    const name = muted ? 'muted' : v.volume < 0.5 ? 'volume-low' : 'volume';
    if (b.dataset.icon !== name) {
      b.dataset.icon = name;
      b.replaceChildren(icon(name));
    }
    b.setAttribute('aria-label', muted ? 'Unmute (m)' : 'Mute (m)');
    b.title = muted ? 'Unmute (m)' : 'Mute (m)';
    const volume = $('volume') as HTMLInputElement;
    volume.value = String(muted ? 0 : v.volume);
    volume.style.setProperty('--fill', `${(muted ? 0 : v.volume) * 100}%`);
    if (!muted) $('unmute-hint').hidden = true;
  }

  #pokeControls(): void {
    setData(this.playerEl, 'controls', 'visible');
    this.#scheduleHide(CONTROLS_HIDE_MS);
  }

  /**
   * Hides the controls after `ms` unless something keeps them shown (paused, a menu, an overlay, a
   * seek, the pointer or the focus on them). Then the timer stops rather than checking again: each of
   * those ends with an event that arms it again (play, closing the menu, the overlay going, the seek's
   * change, pointer movement or leaving, focus leaving).
   */
  #scheduleHide(ms: number): void {
    clearTimeout(this.#hideTimer);
    this.#hideTimer = setTimeout(() => {
      this.#hideTimer = undefined;
      const v = this.video;
      const busy =
        v.paused ||
        !$('quality-menu').hidden ||
        this.overlay !== 'none' ||
        this.seeking ||
        $('controls').matches(':hover') ||
        $('controls').contains(document.activeElement);
      if (!busy) this.playerEl.dataset.controls = 'hidden';
    }, ms);
  }

  // ------------------------------------------------------------------ quality

  #setMenu(open: boolean): void {
    const menu = $('quality-menu');
    menu.hidden = !open;
    $('quality-button').setAttribute('aria-expanded', String(open));
    if (open) {
      this.#renderQualityMenu();
      menu.querySelector<HTMLElement>('[aria-checked="true"]')?.focus();
    }
    this.#pokeControls();
  }

  /** The level being played, and whether the choice is automatic. */
  #currentLevel(): { level: number; auto: boolean } {
    const hls = this.player?.hls;
    return { level: hls?.currentLevel ?? -1, auto: hls?.autoLevelEnabled ?? true };
  }

  #renderQualityMenu(): void {
    const menu = $('quality-menu');
    const { level, auto } = this.#currentLevel();
    const playing = this.levels.find((l) => l.index === level);
    const item = (key: string, label: string, sub: string, checked: boolean, current: boolean) => {
      const b = el(
        'button',
        {
          className: 'menu-item',
          attrs: {
            type: 'button',
            role: 'menuitemradio',
            'data-level': key,
            'aria-checked': String(checked),
            'data-current': String(current),
          },
        },
        el(
          'span',
          { className: 'menu-check', attrs: { 'aria-hidden': 'true' } },
          checked ? icon('check') : null,
        ),
        el('span', { className: 'menu-label', text: label }),
        sub ? el('span', { className: 'menu-sub', text: sub }) : null,
      );
      return b;
    };
    const sorted = [...this.levels].sort((a, b) => b.height - a.height || b.bandwidthBps - a.bandwidthBps);
    const items = [
      item('auto', 'Auto', auto && playing ? playing.name : '', auto, false),
      ...sorted.map((l) =>
        item(
          String(l.index),
          l.name,
          formatKbps(l.bandwidthBps / 1000),
          !auto && l.index === level,
          l.index === level,
        ),
      ),
    ];
    const key = items.map((i) => i.outerHTML).join('');
    if (menu.dataset.key !== key) {
      const focused = (document.activeElement as HTMLElement | null)?.dataset?.level;
      menu.dataset.key = key;
      menu.replaceChildren(el('div', { className: 'menu-title', text: 'Quality' }), ...items);
      if (focused !== undefined && !menu.hidden)
        menu.querySelector<HTMLElement>(`[data-level="${focused}"]`)?.focus();
    }
    const qb = $('quality-button');
    qb.hidden = this.levels.length === 0;
    this.#renderQualityLabel();
  }

  #renderQualityLabel(s?: PlayerStats): void {
    const { level, auto } = this.#currentLevel();
    const name = this.levels.find((l) => l.index === level)?.name ?? s?.rendition ?? '';
    const qb = $('quality-button');
    const text = auto ? (name ? `Auto · ${name}` : 'Auto') : name;
    setText($('quality-label'), text);
    setData(qb, 'auto', String(auto));
    setTitle(qb, `Quality: ${text}`);
  }

  // ------------------------------------------------------------------ live edge

  #renderLive(s: PlayerStats): void {
    if (!this.live) return;
    const badge = $('live-badge');
    const latency = $('latency');
    const segS = this.info?.segmentDurationS ?? this.player?.channelInfo?.segmentDurationS ?? 2;
    const target = this.player?.hls?.targetLatency ?? 3 * segS;
    const behind = this.video.paused || (s.latencyS !== null && s.latencyS > target + Math.max(3, 2 * segS));
    setData(badge, 'atEdge', String(!behind));
    setTitle(badge, behind ? 'Behind live: click to go to the live edge' : 'You are watching live');
    setHidden($('go-live'), !behind);
    setData(latency, 'value', s.latencyS === null ? '' : String(s.latencyS));
    setTitle(latency, 'Delay behind the live edge');
    if (s.latencyS === null) {
      if (this.#latencyText) latency.replaceChildren();
      this.#latencyText = undefined;
      return;
    }
    const text = `${s.latencyS.toFixed(1)} s`;
    // Built once; then only the number's text node changes.
    if (!this.#latencyText) {
      this.#latencyText = document.createTextNode(text);
      latency.replaceChildren(this.#latencyText, el('span', { className: 'long', text: ' behind live' }));
    } else if (this.#latencyText.data !== text) this.#latencyText.data = text;
  }

  // ------------------------------------------------------------------ recordings: time, seek, download progress

  #renderTime(at: number): void {
    const d = this.video.duration;
    setText($('time'), `${formatClock(at)} / ${Number.isFinite(d) ? formatClock(d) : '–:––'}`);
  }

  #renderTimeline(): void {
    if (this.live || pageHidden()) return;
    const v = this.video;
    const d = v.duration;
    const seek = $('seek') as HTMLInputElement;
    if (Number.isFinite(d) && d > 0) {
      if (seek.max !== String(d)) seek.max = String(d);
      if (!this.seeking) seek.value = String(v.currentTime);
      const played = `${((Math.min(d, this.seeking ? Number(seek.value) : v.currentTime) / d) * 100).toFixed(2)}%`;
      const playedEl = $('tl-played');
      if (playedEl.style.width !== played) playedEl.style.width = played;
      // The buffered ranges change a few times per segment, not with every timeupdate.
      const ranges: [string, string][] = [];
      for (let i = 0; i < v.buffered.length; i++)
        ranges.push([v.buffered.start(i).toFixed(2), v.buffered.end(i).toFixed(2)]);
      const key = `${d}|${ranges.map((r) => r.join('-')).join(',')}`;
      if (key !== this.#bufferedKey) {
        this.#bufferedKey = key;
        $('tl-buffered').replaceChildren(
          ...ranges.map(([a, b]) => {
            const s = el('span', { attrs: { 'data-start': a, 'data-end': b } });
            s.style.left = `${(Number(a) / d) * 100}%`;
            s.style.width = `${((Number(b) - Number(a)) / d) * 100}%`;
            return s;
          }),
        );
      }
    }
    if (!this.seeking) this.#renderTime(v.currentTime);
  }

  /**
   * Segments the engine already fetched and holds, on the timeline. A segment's place comes from the
   * playlist hls.js loaded for the engine's rendition (its fragment's start and duration) when known;
   * otherwise it is estimated as (sequence − the playlist's first sequence) × the channel's segment
   * duration, which is close since segments are cut at that duration.
   */
  #renderHeld(): void {
    const player = this.player;
    const d = this.video.duration;
    if (!player || !Number.isFinite(d) || d <= 0) return;
    const held = player.heldSegments().sort((a, b) => a - b);
    const rendition = player.engine?.rendition;
    const levelIndex = this.levels.find((l) => l.name === rendition)?.index ?? player.hls?.currentLevel ?? -1;
    const details = player.hls?.levels[levelIndex]?.details;
    const segS = player.channelInfo?.segmentDurationS ?? this.info?.segmentDurationS ?? 2;
    const firstSeq = details?.startSN ?? held[0] ?? 0;
    const bySn = new Map<number, { start: number; duration: number }>();
    for (const f of details?.fragments ?? [])
      if (typeof f.sn === 'number') bySn.set(f.sn, { start: f.start, duration: f.duration });
    const place = (seq: number) => bySn.get(seq) ?? { start: (seq - firstSeq) * segS, duration: segS };
    // Merge consecutive segments into runs.
    const runs: [number, number][] = [];
    for (const seq of held) {
      const p = place(seq);
      const last = runs.at(-1);
      if (last && Math.abs(last[1] - p.start) < 0.05) last[1] = p.start + p.duration;
      else runs.push([p.start, p.start + p.duration]);
    }
    const key = `${d}|${runs.map((r) => r.join('-')).join(',')}`;
    if (key === this.#heldKey) return;
    this.#heldKey = key;
    const track = $('tl-held');
    track.dataset.segments = String(held.length);
    track.replaceChildren(
      ...runs.map(([a, b]) => {
        const s = el('span', { attrs: { 'data-start': a.toFixed(2), 'data-end': b.toFixed(2) } });
        s.style.left = `${(Math.max(0, a) / d) * 100}%`;
        s.style.width = `${(Math.max(0, Math.min(d, b) - Math.max(0, a)) / d) * 100}%`;
        return s;
      }),
    );
  }

  // ------------------------------------------------------------------ stats panel

  #setStatsOpen(open: boolean): void {
    const panel = opt('stats-panel');
    const button = opt('stats-button');
    if (!panel || !button) return;
    panel.hidden = !open;
    button.setAttribute('aria-pressed', String(open));
    this.#statsOpen = open;
    if (open && this.#lastStats) this.#renderStats(this.#lastStats);
    this.chart?.setShown(open && !pageHidden());
  }

  /** The stats panel (only while it is open): this player's figures, each written when it changed. */
  #renderStats(s: PlayerStats): void {
    const panel = opt('stats-panel');
    if (!panel) return;
    if (!this.#statsCells) {
      this.#statsCells = new Map();
      for (const dd of panel.querySelectorAll<HTMLElement>('[data-stat]'))
        this.#statsCells.set(dd.dataset.stat!, dd);
      const windowEl = opt('own-share-window');
      if (windowEl) this.#statsCells.set('ownShareWindow', windowEl);
    }
    const cells = this.#statsCells;
    const own = cells.get('ownShare');
    if (own) {
      setData(own, 'value', this.#ownShareNow === null ? '' : String(this.#ownShareNow));
      setText(own, this.#ownShareNow === null ? '—' : formatPercent(this.#ownShareNow));
    }
    const windowEl = cells.get('ownShareWindow');
    if (windowEl) setText(windowEl, `last ${windowLabel(this.ownShare.windowMs)}`);
    const fmt: Record<string, (v: never) => string> = {
      peers: (v: number) => String(v),
      downloadKbps: (v: number) => formatKbps(v),
      uploadKbps: (v: number) => formatKbps(v),
      httpBytes: (v: number) => formatBytes(v),
      p2pBytes: (v: number) => formatBytes(v),
      uploadedBytes: (v: number) => formatBytes(v),
      rendition: (v: string) => v || '—',
      bufferS: (v: number) => `${v.toFixed(1)} s`,
      latencyS: (v: number | null) => (v === null ? (s.live ? '—' : 'n/a (recording)') : `${v.toFixed(1)} s`),
      stalls: (v: number) => String(v),
      trackerConnected: (v: boolean) => (v ? 'connected' : 'not connected'),
      webrtc: (v: boolean) => (v ? 'available' : 'unavailable'),
    };
    for (const [name, dd] of cells) {
      const key = name as keyof PlayerStats;
      const f = fmt[key];
      if (!(key in s) || !f) continue;
      const value = s[key];
      setData(dd, 'value', value === null ? '' : String(value));
      setText(dd, (f as (v: unknown) => string)(value));
    }
  }

  // ------------------------------------------------------------------ channel info (watch page)

  #renderInfo(): void {
    const info = this.info;
    const page = this.page;
    if (!info || !page) return;
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
    this.#renderRecordingList();
  }

  #renderRecordingList(): void {
    const list = opt('recording-list');
    const info = this.info;
    const page = this.page;
    if (!list || !info || !page) return;
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
    const page = this.page!;
    const q = page.recording !== undefined ? `?recording=${encodeURIComponent(page.recording)}` : '';
    const link = `${location.origin}${watchUrl(page.channel, page.recording)}`;
    const embedSrc = `${location.origin}/embed/${encodeURIComponent(page.channel)}${q}`;
    const snippet = `<iframe src="${embedSrc}" width="640" height="360" title="PeerTV: ${encodeURIComponent(page.channel)}" allow="autoplay; fullscreen; picture-in-picture" allowfullscreen style="border:0"></iframe>`;
    ($('share-link') as HTMLInputElement).value = link;
    ($('embed-code') as HTMLTextAreaElement).value = snippet;
    for (const b of document.querySelectorAll<HTMLButtonElement>('[data-copy]')) {
      b.addEventListener('click', () => {
        const target = document.getElementById(b.dataset.copy!) as
          HTMLInputElement | HTMLTextAreaElement | null;
        if (!target) return;
        target.select();
        const done = () => {
          const old = b.textContent;
          b.textContent = 'Copied';
          setTimeout(() => (b.textContent = old), 1500);
        };
        if (navigator.clipboard)
          void navigator.clipboard
            .writeText(target.value)
            .then(done, () => document.execCommand('copy') && done());
        else if (document.execCommand('copy')) done();
      });
    }
  }
}
