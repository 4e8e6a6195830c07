/**
 * The player's controls: play and pause (the bar's button, the big button, a click on the video),
 * volume and mute (remembered), full screen, the LIVE badge and the delay behind live, the keyboard
 * (k or space, m, f, ←/→ on recordings), and hiding the bar when nobody uses it.
 *
 * The auto-hide timer only runs after an interaction: when it fires while something keeps the controls
 * shown (paused, a menu, an overlay, a seek, the pointer or the focus on them) it stops rather than
 * checking again, and each of those ends with an event that arms it again.
 */
import type { PeerTVPlayer, PlayerStats } from '../api.ts';
import type { OverlayState } from './overlay.ts';
import { $, el, icon, Listeners, setData, setHidden, setTitle } from './util.ts';

const CONTROLS_HIDE_MS = 3000;

export interface ControlsDeps {
  live: boolean;
  player: () => PeerTVPlayer | undefined;
  overlay: () => OverlayState;
  /** The channel's segment duration (s), for what counts as "behind live". */
  segmentDurationS: () => number;
  /** Something else keeps the controls shown (the quality menu is open, a seek is under way). */
  busy: () => boolean;
}

export class Controls {
  readonly #video: HTMLVideoElement;
  readonly #playerEl: HTMLElement;
  readonly #deps: ControlsDeps;
  readonly #listeners = new Listeners();
  #hideTimer: ReturnType<typeof setTimeout> | undefined;
  #lastPointer = 'mouse';
  #latencyText: Text | undefined;

  constructor(video: HTMLVideoElement, playerEl: HTMLElement, deps: ControlsDeps) {
    this.#video = video;
    this.#playerEl = playerEl;
    this.#deps = deps;
    const v = video;
    const on = this.#listeners.on.bind(this.#listeners);
    on($('play-button'), 'click', () => this.togglePlay());
    on($('big-play'), 'click', () => this.togglePlay());
    on(v, 'play', () => this.renderPlayButton());
    on(v, 'pause', () => this.renderPlayButton());
    on(v, 'click', () => {
      if (this.#lastPointer === 'touch' && playerEl.dataset.controls === 'hidden') return this.poke();
      this.togglePlay();
    });
    on(v, 'dblclick', () => this.#toggleFullscreen());

    // Volume (remembered).
    const volume = $('volume') as HTMLInputElement;
    try {
      const saved = Number(localStorage.getItem('peertv:volume'));
      if (localStorage.getItem('peertv:volume') !== null && saved >= 0 && saved <= 1) v.volume = saved;
      if (localStorage.getItem('peertv:muted') === 'true') v.muted = true;
    } catch {
      /* storage may be disabled */
    }
    on(volume, 'input', () => {
      v.volume = Number(volume.value);
      v.muted = v.volume === 0;
    });
    on($('mute-button'), 'click', () => {
      v.muted = !v.muted;
      if (!v.muted && v.volume === 0) v.volume = 0.5;
    });
    on($('unmute-hint'), 'click', () => {
      v.muted = false;
      if (v.volume === 0) v.volume = 0.5;
    });
    on(v, 'volumechange', () => {
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
    on($('fullscreen-button'), 'click', () => this.#toggleFullscreen());
    on(document, 'fullscreenchange', () => this.#renderFullscreen());
    this.#renderFullscreen();

    // Live edge.
    on($('go-live'), 'click', () => this.#goLive());
    on($('live-badge'), 'click', () => this.#goLive());

    // Auto-hiding controls.
    const p = playerEl;
    on<PointerEvent>(p, 'pointerdown', (e) => (this.#lastPointer = e.pointerType), true);
    on<PointerEvent>(p, 'pointermove', (e) => {
      if (e.pointerType === 'mouse') this.poke();
    });
    on(p, 'pointerleave', () => this.#scheduleHide(600));
    on(p, 'focusin', () => this.poke());
    // Focus leaving the controls may end what kept them shown (the hide timer does not poll for it).
    on(p, 'focusout', () => this.#scheduleHide(CONTROLS_HIDE_MS));
    on($('controls'), 'pointerdown', () => this.poke());

    // Keyboard.
    on<KeyboardEvent>(document, 'keydown', (e) => {
      const t = e.target as HTMLElement;
      if (e.ctrlKey || e.metaKey || e.altKey || t.closest('input, textarea, select, [contenteditable]'))
        return;
      const onButton = t.closest('button, a');
      switch (e.key) {
        case ' ':
        case 'k':
          if (e.key === ' ' && onButton) return;
          e.preventDefault();
          this.togglePlay();
          break;
        case 'm':
          v.muted = !v.muted;
          break;
        case 'f':
          this.#toggleFullscreen();
          break;
        case 'ArrowLeft':
        case 'ArrowRight':
          if (this.#deps.live || !Number.isFinite(v.duration)) return;
          e.preventDefault();
          v.currentTime = Math.max(0, Math.min(v.duration, v.currentTime + (e.key === 'ArrowLeft' ? -5 : 5)));
          break;
        default:
          return;
      }
      this.poke();
    });
    this.poke();
  }

  /** Shows the big play button (paused before playback, or autoplay refused). */
  setBigPlay(shown: boolean): void {
    $('big-play').hidden = !shown;
  }

  showUnmuteHint(): void {
    $('unmute-hint').hidden = false;
  }

  togglePlay(): void {
    const v = this.#video;
    const overlay = this.#deps.overlay();
    if (overlay !== 'none' && overlay !== 'loading') return;
    if (v.paused || v.ended) {
      this.setBigPlay(false);
      void v.play().catch(() => this.setBigPlay(true));
    } else v.pause();
  }

  #goLive(): void {
    const player = this.#deps.player();
    if (!player || !this.#deps.live) return;
    player.goLive();
    this.setBigPlay(false);
  }

  #toggleFullscreen(): void {
    const doc = document as Document & { webkitFullscreenElement?: Element };
    if (doc.fullscreenElement ?? doc.webkitFullscreenElement) {
      void document.exitFullscreen?.().catch(() => {});
      return;
    }
    const p = this.#playerEl as HTMLElement & { webkitRequestFullscreen?: () => void };
    const v = this.#video as HTMLVideoElement & { webkitEnterFullscreen?: () => void };
    if (p.requestFullscreen) void p.requestFullscreen().catch(() => v.webkitEnterFullscreen?.());
    else if (p.webkitRequestFullscreen) p.webkitRequestFullscreen();
    else v.webkitEnterFullscreen?.();
  }

  #renderFullscreen(): void {
    const on = document.fullscreenElement === this.#playerEl;
    const b = $('fullscreen-button');
    b.replaceChildren(icon(on ? 'fullscreen-exit' : 'fullscreen'));
    b.setAttribute('aria-label', on ? 'Exit full screen (f)' : 'Full screen (f)');
    b.title = on ? 'Exit full screen (f)' : 'Full screen (f)';
  }

  renderPlayButton(): void {
    const paused = this.#video.paused || this.#video.ended;
    const b = $('play-button');
    if (b.dataset.paused === String(paused)) return;
    b.dataset.paused = String(paused);
    b.replaceChildren(icon(paused ? 'play' : 'pause'));
    b.setAttribute('aria-label', paused ? 'Play (k)' : 'Pause (k)');
    b.title = paused ? 'Play (k)' : 'Pause (k)';
    this.#playerEl.dataset.paused = String(paused);
  }

  #renderVolume(): void {
    const v = this.#video;
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

  /** Shows the controls, and hides them again after a while unless something keeps them. */
  poke(): void {
    setData(this.#playerEl, 'controls', 'visible');
    this.#scheduleHide(CONTROLS_HIDE_MS);
  }

  #scheduleHide(ms: number): void {
    clearTimeout(this.#hideTimer);
    this.#hideTimer = setTimeout(() => {
      this.#hideTimer = undefined;
      const controls = $('controls');
      const busy =
        this.#video.paused ||
        this.#deps.busy() ||
        this.#deps.overlay() !== 'none' ||
        controls.matches(':hover') ||
        controls.contains(document.activeElement);
      if (!busy) this.#playerEl.dataset.controls = 'hidden';
    }, ms);
  }

  /** The LIVE badge (at the live edge or behind it) and the delay behind live, from a `stats` event. */
  renderLive(s: PlayerStats): void {
    if (!this.#deps.live) return;
    const badge = $('live-badge');
    const latency = $('latency');
    const segS = this.#deps.segmentDurationS();
    const target = this.#deps.player()?.hls?.targetLatency ?? 3 * segS;
    const behind = this.#video.paused || (s.latencyS !== null && s.latencyS > target + Math.max(3, 2 * segS));
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

  destroy(): void {
    clearTimeout(this.#hideTimer);
    this.#listeners.removeAll();
  }
}
