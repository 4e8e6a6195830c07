/**
 * The watch and embed pages: one channel (or one of its recordings) in a <video>. This file wires the
 * page's components and owns what they share: the player (`PeerTV.attach` from `/peertv.js`, exposed as
 * `window.peertv`), the channel's directory entry (polled), and the page's state machine (loading,
 * playing, offline, ended, not found, error).
 *
 * Components, each adding and removing its own listeners: controls.ts (play, volume, full screen, live
 * edge, keyboard, auto-hide), quality-menu.ts, timeline.ts (recordings' seek bar and download
 * progress), stats-panel.ts (with the chart), channel-info.ts (title, badge, meta, recordings, share
 * snippet), overlay.ts (state overlay and notice banners).
 *
 * The page's own CPU: it renders from events (the player's `state` and once-a-second `stats`, the
 * video's events), writes the DOM only where a value changed, renders nothing while the page is hidden
 * (it catches up when shown), updates the stats panel and its chart only while the panel is open, and
 * keeps no timer running that has nothing to do (the channel-info poll sleeps while the page is hidden,
 * the controls' auto-hide timer stops until the next interaction).
 */
import type { Level, PeerTVPlayer, PlayerState, PlayerStats } from '../api.ts';
import type { ChannelInfo, PlayerNoticeCode } from '../../../protocol/index.ts';
import { OFFLOAD_WINDOW_MS } from '../../../protocol/index.ts';
import { ChannelInfoView, pageFromUrl, type WatchPage } from './channel-info.ts';
import { Controls } from './controls.ts';
import { Banners, StateOverlay, type OverlayState } from './overlay.ts';
import { QualityMenu } from './quality-menu.ts';
import { StatsPanel } from './stats-panel.ts';
import { Timeline } from './timeline.ts';
import { $, getJson, Listeners, pageHidden } from './util.ts';

const INFO_POLL_MS = 5000;

export function watch(embed: boolean): void {
  const ui = new WatchUi(pageFromUrl(embed), $('video') as HTMLVideoElement, $('player'));
  ui.start();
}

class WatchUi {
  readonly page: WatchPage | undefined;
  readonly video: HTMLVideoElement;
  readonly playerEl: HTMLElement;
  player: PeerTVPlayer | undefined;
  info: ChannelInfo | undefined;
  /** The tracker reported the broadcast over while this page plays it: show "ended" once drained. */
  endedPending = false;
  played = false;
  readonly overlay: StateOverlay;
  readonly banners: Banners;
  readonly controls: Controls;
  readonly quality: QualityMenu;
  readonly timeline: Timeline;
  readonly stats: StatsPanel;
  readonly channelInfo: ChannelInfoView | undefined;
  readonly #listeners = new Listeners();
  #lastStats: PlayerStats | undefined;
  #pollTimer: ReturnType<typeof setTimeout> | undefined;
  /** A poll came due while the page was hidden: poll when it is shown again. */
  #pollDue = false;
  #destroyed = false;

  constructor(page: WatchPage | undefined, video: HTMLVideoElement, playerEl: HTMLElement) {
    this.page = page;
    this.video = video;
    this.playerEl = playerEl;
    const live = this.live;
    const player = () => this.player;
    this.overlay = new StateOverlay(playerEl, {
      page,
      info: () => this.info,
      retry: () => this.attach(),
      changed: (state) => this.#overlayChanged(state),
    });
    this.banners = new Banners();
    this.controls = new Controls(video, playerEl, {
      live,
      player,
      overlay: () => this.overlay.state,
      segmentDurationS: () => this.info?.segmentDurationS ?? this.player?.channelInfo?.segmentDurationS ?? 2,
      busy: () => this.quality.open || this.timeline.seeking,
    });
    this.quality = new QualityMenu({ player, changed: () => this.controls.poke() });
    this.stats = new StatsPanel();
    this.timeline = new Timeline(video, {
      live,
      player,
      levels: () => this.quality.levels,
      segmentDurationS: () => this.player?.channelInfo?.segmentDurationS ?? this.info?.segmentDurationS ?? 2,
      seeked: () => this.controls.poke(),
    });
    this.channelInfo = page ? new ChannelInfoView(page) : undefined;
  }

  get live(): boolean {
    return this.page?.recording === undefined;
  }

  start(): void {
    if (!this.page) {
      this.overlay.set('not-found', 'Nothing to play here', 'This address does not name a channel.');
      return;
    }
    this.playerEl.dataset.live = String(this.live);
    $('timeline').hidden = this.live;
    $('live-group').hidden = !this.live;
    $('time').hidden = this.live;
    this.#listeners.on(document, 'visibilitychange', () => this.#onVisibility());
    this.attach();
    void this.#pollAndSchedule();
  }

  /** Polls the channel's directory entry now, then again in INFO_POLL_MS unless the page is hidden. */
  async #pollAndSchedule(): Promise<void> {
    clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
    this.#pollDue = false;
    await this.pollInfo();
    if (this.#destroyed) return;
    clearTimeout(this.#pollTimer);
    this.#pollTimer = setTimeout(() => {
      this.#pollTimer = undefined;
      if (pageHidden()) this.#pollDue = true;
      else void this.#pollAndSchedule();
    }, INFO_POLL_MS);
  }

  #onVisibility(): void {
    if (pageHidden()) return;
    // Catch up with what happened while hidden (the stats panel catches up by itself).
    if (this.#lastStats) this.#renderStatsEvent(this.#lastStats);
    if (this.#pollDue) void this.#pollAndSchedule();
  }

  #overlayChanged(state: OverlayState): void {
    if (state !== 'none') this.controls.setBigPlay(false);
    if (state === 'ended' || state === 'offline') {
      this.video.pause();
      this.playerEl.classList.remove('buffering');
    }
    this.controls.poke();
  }

  // ------------------------------------------------------------------ player

  attach(): void {
    const page = this.page!;
    const PeerTV = window.PeerTV;
    if (!PeerTV) {
      this.overlay.set('error', 'The player did not load', 'peertv.js is missing: reload the page.');
      return;
    }
    this.player?.destroy();
    this.played = false;
    this.endedPending = false;
    this.stats.reset();
    this.banners.clear();
    this.quality.setLevels([]);
    this.overlay.set('loading');
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
    player.on('levels', (levels: Level[]) => this.quality.setLevels(levels));
    player.on('level-switched', () => this.quality.render());
    player.on('stats', (s) => this.onStats(s));
  }

  #dropPlayer(): void {
    this.player?.destroy();
    this.player = undefined;
  }

  onState(s: PlayerState): void {
    const v = this.video;
    const overlay = this.overlay;
    this.playerEl.dataset.state = s;
    this.playerEl.classList.toggle('buffering', s === 'stalled' || (s === 'loading' && this.played));
    this.controls.renderPlayButton();
    switch (s) {
      case 'playing':
        this.played = true;
        if (overlay.state === 'loading') overlay.set('none');
        this.controls.setBigPlay(false);
        this.controls.poke();
        break;
      case 'paused':
        if (!this.played && overlay.state === 'loading') {
          // Autoplay with sound was refused: start muted and offer to unmute, else wait for a click.
          v.muted = true;
          v.play().then(
            () => this.controls.showUnmuteHint(),
            () => {
              overlay.set('none');
              this.controls.setBigPlay(true);
            },
          );
        } else if (overlay.state === 'none') {
          this.controls.setBigPlay(true);
        }
        this.controls.poke();
        break;
      case 'ended':
        if (!this.live) this.controls.setBigPlay(true);
        else this.showEnded();
        break;
      case 'offline':
        overlay.set('offline');
        break;
      case 'error':
        // A notice says why (and may pick a more precise overlay); keep that one.
        if (overlay.state === 'loading' || overlay.state === 'none') overlay.set('error');
        break;
    }
    if (this.endedPending && (s === 'stalled' || s === 'ended' || s === 'error')) this.showEnded();
  }

  onNotice(code: PlayerNoticeCode, message: string): void {
    const failed = this.player?.state === 'error' || this.player?.state === 'offline';
    switch (code) {
      case 'unknown-channel':
        this.showNotFound();
        break;
      case 'channel-offline':
        this.overlay.set('offline');
        break;
      case 'broadcast-ended':
        this.showEnded();
        break;
      case 'tracker-unreachable':
        if (failed)
          this.overlay.set(
            'error',
            'Tracker unreachable',
            'The channel directory cannot be reached. Playback starts when it is back.',
          );
        else this.banners.show(code, 'Tracker unreachable — playing from the origin');
        break;
      case 'webrtc-unavailable':
        this.banners.show(code, 'WebRTC unavailable — playing from the origin');
        break;
      case 'media-error':
        this.banners.show(code, `Playback problem (${message}) — recovering`, 8000);
        break;
      default:
        if (failed) this.overlay.set('error', 'Playback failed', message);
    }
  }

  onStats(s: PlayerStats): void {
    this.#lastStats = s;
    this.stats.push(s);
    if (!pageHidden()) this.#renderStatsEvent(s);
    if (this.endedPending && this.live && s.bufferS < 0.3 && s.state !== 'playing') this.showEnded();
  }

  /** What a `stats` event changes on screen besides the stats panel. */
  #renderStatsEvent(s: PlayerStats): void {
    this.controls.renderLive(s);
    this.quality.renderLabel(s);
    if (!this.live) this.timeline.renderHeld();
  }

  showEnded(): void {
    if (!this.live) return;
    this.overlay.set('ended');
  }

  /** The tracker has no such channel (the player's `unknown-channel`, or the directory's 404). */
  showNotFound(): void {
    this.overlay.set(
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
    if (this.#destroyed) return;
    const overlay = this.overlay;
    if (res.status === 404) {
      this.#dropPlayer();
      this.showNotFound();
      return;
    }
    const info = res.body;
    if (res.status !== 200 || !info || typeof info.id !== 'string') return;
    const before = this.info;
    this.info = info;
    this.stats.ownShare.windowMs = (info.offloadWindowS ?? OFFLOAD_WINDOW_MS / 1000) * 1000;
    try {
      if (info.originUrl) localStorage.setItem(`peertv:origin:${page.channel}`, info.originUrl);
    } catch {
      /* storage may be disabled */
    }
    this.channelInfo?.render(info);
    if (
      overlay.isDefault &&
      (overlay.state === 'offline' || overlay.state === 'ended') &&
      before?.title !== info.title
    )
      overlay.set(overlay.state);
    if (page.recording !== undefined) {
      if (!info.recordings.some((r) => r.id === page.recording)) {
        this.#dropPlayer();
        overlay.set('not-found', 'Recording not found', 'This recording does not exist (any more).');
      }
      return;
    }
    if (info.status === 'live') {
      // Back on air after being offline or ended, or registered (again: a tracker restarted before its
      // source registered) after "not found": start over.
      if (
        overlay.state === 'offline' ||
        overlay.state === 'ended' ||
        overlay.state === 'not-found' ||
        (overlay.state === 'error' && before?.status !== 'live')
      )
        this.attach();
      return;
    }
    if (info.status === 'ended') {
      // Playing: let the buffer play out first (the player also says so once the stream ends).
      const st = this.player?.state;
      if (overlay.state === 'ended') {
        /* already */
      } else if (this.played && overlay.state === 'none' && (st === 'playing' || st === 'paused'))
        this.endedPending = true;
      else this.showEnded();
    } else if (info.status === 'idle' && overlay.state !== 'offline') {
      this.#dropPlayer();
      overlay.set('offline');
    }
    if (overlay.state === 'ended') overlay.renderActions();
  }

  /** Tears the page down: the player, the poll and every component's listeners (idempotent). */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    clearTimeout(this.#pollTimer);
    this.#listeners.removeAll();
    this.#dropPlayer();
    for (const c of [this.controls, this.quality, this.timeline, this.stats, this.overlay, this.banners])
      c.destroy();
    this.channelInfo?.destroy();
  }
}
