/**
 * The playlist follower: polls the media playlist of the rendition being played (every half target
 * duration while live, once for a recording), keeps the known segments of the live window and the
 * newest published media sequence, and says when the playlist changed or could not be had.
 */
import { parseMediaPlaylist, type MediaPlaylist } from './hls.ts';
import type { Clock, TimerHandle } from './seams.ts';

export interface KnownSegment {
  rendition: string;
  mediaSequence: number;
  discontinuitySequence: number;
  durationS: number;
  url: string;
  gap: boolean;
}

export interface PlaylistUpdate {
  rendition: string;
  newest: number;
  oldest: number;
  ended: boolean;
  /** Live: segments before this one left the window (their records are not needed any more). */
  windowStart: number | undefined;
}

export interface PlaylistFollowerDeps {
  clock: Clock;
  /** GET a text document (rejects on failure). */
  getText(url: string): Promise<string>;
  updated(update: PlaylistUpdate): void;
  failed(message: string): void;
}

export class PlaylistFollower {
  /** Known segments of the followed rendition, by media sequence. */
  readonly known = new Map<number, KnownSegment>();
  newestPublished = -1;
  ended = false;
  readonly #keepSegments: number;
  readonly #deps: PlaylistFollowerDeps;
  #rendition = '';
  #url = '';
  #timer: TimerHandle | undefined;
  #destroyed = false;
  /** The last playlist parsed, and its text and URL: a poll that finds it unchanged does not parse it again. */
  #last: { url: string; text: string; playlist: MediaPlaylist } | undefined;

  constructor(keepSegments: number, deps: PlaylistFollowerDeps) {
    this.#keepSegments = keepSegments;
    this.#deps = deps;
  }

  /** Follows a rendition's media playlist from now on (forgetting the previous one's segments). */
  follow(rendition: string, url: string): Promise<void> {
    if (this.#rendition && rendition !== this.#rendition) this.known.clear();
    this.#rendition = rendition;
    this.#url = url;
    this.#deps.clock.clearTimeout(this.#timer);
    return this.#poll();
  }

  /** A newer segment is known to be published (an attestation pushed). */
  notePublished(mediaSequence: number): void {
    this.newestPublished = Math.max(this.newestPublished, mediaSequence);
  }

  async #poll(): Promise<void> {
    if (this.#destroyed) return;
    const { clock } = this.#deps;
    const url = this.#url;
    const rendition = this.#rendition;
    try {
      const pl = this.#parse(await this.#deps.getText(url), url);
      if (this.#destroyed || rendition !== this.#rendition) return;
      for (const s of pl.segments)
        if (!this.known.has(s.mediaSequence))
          this.known.set(s.mediaSequence, {
            rendition,
            mediaSequence: s.mediaSequence,
            discontinuitySequence: s.discontinuitySequence,
            durationS: s.durationS,
            url: s.url,
            gap: s.gap,
          });
      const seqs = [...this.known.keys()].sort((a, b) => a - b);
      const newest = seqs.at(-1) ?? -1;
      // A live window slides; a recording's playlist is kept whole.
      let windowStart: number | undefined;
      if (!pl.ended) {
        windowStart = newest - 3 * this.#keepSegments;
        for (const s of seqs) if (s < windowStart) this.known.delete(s);
      }
      this.newestPublished = Math.max(this.newestPublished, newest);
      this.ended = pl.ended;
      this.#deps.updated({ rendition, newest, oldest: seqs[0] ?? -1, ended: pl.ended, windowStart });
      const targetMs = Math.max(250, (pl.targetDurationS * 1000) / 2);
      if (!pl.ended && !this.#destroyed) this.#timer = clock.setTimeout(() => void this.#poll(), targetMs);
    } catch (err) {
      this.#deps.failed(`playlist: ${(err as Error).message}`);
      if (!this.#destroyed) this.#timer = clock.setTimeout(() => void this.#poll(), 1000);
    }
  }

  /** The playlist of `text` (parsed unless it is the last one's). */
  #parse(text: string, url: string): MediaPlaylist {
    const last = this.#last;
    if (last !== undefined && last.text === text && last.url === url) return last.playlist;
    const playlist = parseMediaPlaylist(text, url);
    this.#last = { url, text, playlist };
    return playlist;
  }

  /** Stops polling. Idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#deps.clock.clearTimeout(this.#timer);
  }
}
