/**
 * Recordings' timeline: the seek bar, the time, what the video buffered and what the P2P engine
 * already holds (download progress). Live channels have none (the page hides it).
 */
import type { Level, PeerTVPlayer } from '../api.ts';
import { formatClock } from './format.ts';
import { $, el, Listeners, pageHidden, setText } from './util.ts';

export interface TimelineDeps {
  live: boolean;
  player: () => PeerTVPlayer | undefined;
  levels: () => Level[];
  /** The channel's segment duration (s), to place held segments the playlist does not (yet) give. */
  segmentDurationS: () => number;
  /** A seek ended (the controls may hide again). */
  seeked: () => void;
}

export class Timeline {
  /** The seek bar is being dragged. */
  seeking = false;
  readonly #video: HTMLVideoElement;
  readonly #deps: TimelineDeps;
  readonly #listeners = new Listeners();
  #bufferedKey = '';
  #heldKey = '';

  constructor(video: HTMLVideoElement, deps: TimelineDeps) {
    this.#video = video;
    this.#deps = deps;
    const seek = $('seek') as HTMLInputElement;
    const on = this.#listeners.on.bind(this.#listeners);
    on(seek, 'input', () => {
      this.seeking = true;
      this.#renderTime(Number(seek.value));
    });
    on(seek, 'change', () => {
      this.seeking = false;
      if (Number.isFinite(video.duration)) video.currentTime = Number(seek.value);
      this.#deps.seeked();
    });
    if (!deps.live)
      for (const ev of ['timeupdate', 'durationchange', 'progress', 'seeked', 'loadedmetadata'])
        on(video, ev, () => this.render());
  }

  #renderTime(at: number): void {
    const d = this.#video.duration;
    setText($('time'), `${formatClock(at)} / ${Number.isFinite(d) ? formatClock(d) : '–:––'}`);
  }

  /** The seek bar, the played part, the buffered ranges and the time (not while the page is hidden). */
  render(): void {
    if (this.#deps.live || pageHidden()) return;
    const v = this.#video;
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
  renderHeld(): void {
    const player = this.#deps.player();
    const d = this.#video.duration;
    if (this.#deps.live || !player || !Number.isFinite(d) || d <= 0) return;
    const held = player.heldSegments().sort((a, b) => a - b);
    const rendition = player.engine?.rendition;
    const levelIndex =
      this.#deps.levels().find((l) => l.name === rendition)?.index ?? player.hls?.currentLevel ?? -1;
    const details = player.hls?.levels[levelIndex]?.details;
    const segS = this.#deps.segmentDurationS();
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

  destroy(): void {
    this.#listeners.removeAll();
  }
}
