/**
 * The playback model: a headless player with a virtual playhead, used by Node viewers and the
 * simulator (browsers use a real video element). It asks the engine for upcoming segments with their
 * playback deadlines, starts near the live edge, counts startup time, stalls and latency to the live
 * edge, and picks a rendition by measured throughput when the engine's rendition is 'auto'.
 */
import { TypedEmitter } from '../../protocol/index.ts';
import type { KnownSegment, PeerEngine } from './engine.ts';
import type { TimerHandle } from './seams.ts';

export interface PlayerOptions {
  /** Start this many segments behind the newest one (1 = the second newest). */
  startBehindSegments: number;
  /** Segments requested ahead of the playhead. */
  bufferAheadSegments: number;
  /** Seconds buffered before playback resumes after a stall. */
  resumeBufferS: number;
  /** Jump back to the live edge when this far behind it (in segment durations). */
  maxLatencySegments: number;
  /**
   * Longest wait between two looks at the playback state. The player is event-driven: it wakes when
   * the playhead reaches the end of a segment, when a segment arrives and when the playlist changes;
   * this tick only bounds retries, live sync and ABR checks while nothing else happens.
   */
  tickMs: number;
  /** Pick the rendition by throughput (only when the engine's rendition option is 'auto'). */
  abr: boolean;
}

export const DEFAULT_PLAYER: PlayerOptions = {
  startBehindSegments: 1,
  bufferAheadSegments: 2,
  resumeBufferS: 1,
  maxLatencySegments: 6,
  tickMs: 500,
  abr: true,
};

/** `seeking`: waiting for the segment a seek moved to (the viewer's choice, not a stall). */
export type PlayerState = 'starting' | 'playing' | 'stalled' | 'seeking' | 'ended';

export type PlayerEvents = {
  playing: (info: { startupMs: number; mediaSequence: number }) => void;
  'stall-started': (info: { mediaSequence: number }) => void;
  'stall-ended': (info: { durationMs: number }) => void;
  /** Playback moved on to a segment (for deadline accounting). */
  'segment-played': (info: { mediaSequence: number; readyBeforeDeadline: boolean }) => void;
  'live-sync': (info: { skippedSegments: number }) => void;
  seeking: (info: { mediaSequence: number }) => void;
  seeked: (info: { mediaSequence: number; waitMs: number }) => void;
  ended: () => void;
};

interface Slot {
  seg: KnownSegment;
  /** Start of this segment on the player's timeline (s). */
  startS: number;
  ready: boolean;
  /** Engine-clock time at which the playhead needs it. */
  deadlineAt: number;
  requested: boolean;
}

export class HeadlessPlayer extends TypedEmitter<PlayerEvents> {
  readonly opts: PlayerOptions;
  state: PlayerState = 'starting';
  /** Playhead position at the last look (s on the player's timeline). */
  #positionS = 0;
  startupMs: number | undefined;
  stalls = 0;
  stallMs = 0;
  segmentsPlayed = 0;
  segmentsOnTime = 0;
  seeks = 0;
  /** Time spent waiting for seek targets (not counted as stalls). */
  seekWaitMs = 0;
  readonly #slots = new Map<number, Slot>();
  #current: number | undefined;
  #next: number | undefined;
  #startedAt: number;
  #lastTickAt: number;
  #stallStartedAt: number | undefined;
  #seekStartedAt = 0;
  /** The viewer seeked back: being behind live is its choice, not a reason to jump to the live edge. */
  #behindByChoice = false;
  #timer: TimerHandle | undefined;
  #destroyed = false;

  constructor(
    readonly engine: PeerEngine,
    opts: Partial<PlayerOptions> = {},
  ) {
    super();
    this.opts = { ...DEFAULT_PLAYER, ...opts };
    this.#startedAt = engine.clock.now();
    this.#lastTickAt = this.#startedAt;
    engine.setPlaybackProbe(() => ({ bufferS: this.bufferS, stalls: this.stalls }));
    engine.on('playlist', () => this.#plan());
    this.#arm();
  }

  /** The playhead now (s on the player's timeline): it moves between looks while playing. */
  get positionS(): number {
    if (this.state !== 'playing') return this.#positionS;
    return this.#positionS + (this.engine.clock.now() - this.#lastTickAt) / 1000;
  }

  /** Seconds buffered ahead of the playhead (contiguous ready segments). */
  get bufferS(): number {
    if (this.#current === undefined) return 0;
    let end = this.positionS;
    for (let seq = this.#current; ; seq++) {
      const s = this.#slots.get(seq);
      if (!s?.ready) break;
      end = s.startS + s.seg.durationS;
    }
    return Math.max(0, end - this.positionS);
  }

  /** Seconds between the playhead and the end of the newest published segment. */
  get latencyS(): number | undefined {
    if (this.state === 'starting' || this.#current === undefined) return undefined;
    // The newest segment on our timeline, plus nominal durations for any published after it that the
    // playlist has not listed yet (the tracker announces segments before the playlist is polled).
    const newest = this.engine.newestPublished;
    const nominalS = this.engine.channelInfo?.segmentDurationS ?? 2;
    for (let seq = newest; seq >= this.#current; seq--) {
      const slot = this.#slots.get(seq) ?? this.#slotFor(seq);
      if (slot) return slot.startS + slot.seg.durationS + (newest - seq) * nominalS - this.positionS;
    }
    return undefined;
  }

  get currentSequence(): number | undefined {
    return this.#current;
  }

  #slotFor(seq: number): Slot | undefined {
    if (this.#slots.has(seq)) return this.#slots.get(seq);
    const seg = this.engine.known.get(seq);
    if (!seg) return undefined;
    const prev = this.#slots.get(seq - 1);
    const next = this.#slots.get(seq + 1);
    let startS: number;
    if (prev) startS = prev.startS + prev.seg.durationS;
    else if (next) startS = next.startS - seg.durationS;
    else if (this.#slots.size === 0) startS = 0;
    else return undefined; // not adjacent to what we know: wait for the playlist to fill in
    const slot: Slot = { seg, startS, ready: seg.gap, deadlineAt: Infinity, requested: seg.gap };
    this.#slots.set(seq, slot);
    return slot;
  }

  /** Sets the next look: when the playhead reaches the current segment's end, at most `tickMs` away. */
  #arm(): void {
    const { clock } = this.engine;
    clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#destroyed || this.state === 'ended') return;
    let ms = this.opts.tickMs;
    const slot = this.state === 'playing' && this.#current !== undefined && this.#slots.get(this.#current);
    if (slot) {
      // Whole ms, never 0: the playhead is past the boundary when the timer runs (no float shortfall).
      const toEndMs = Math.ceil((slot.startS + slot.seg.durationS - this.positionS) * 1000);
      ms = Math.min(ms, Math.max(1, toEndMs));
    }
    this.#timer = clock.setTimeout(() => {
      this.#timer = undefined;
      this.#tick();
    }, ms);
  }

  /** Chooses the start segment once the playlist is known, then keeps requests flowing. */
  #plan(): void {
    if (this.#destroyed || this.state === 'ended') return;
    if (this.#next === undefined) {
      const seqs = [...this.engine.known.keys()].sort((a, b) => a - b);
      if (seqs.length === 0) return;
      // Recordings play from the start; live channels near the live edge.
      const start = this.engine.ended
        ? seqs[0]!
        : seqs[Math.max(0, seqs.length - 1 - this.opts.startBehindSegments)]!;
      this.#current = start;
      this.#next = start;
      this.#slotFor(start);
    }
    this.#request();
  }

  #request(): void {
    if (this.#current === undefined) return;
    const now = this.engine.clock.now();
    const rendition = this.engine.rendition;
    // Before the first frame the playhead waits at the start segment: it is needed now, the next ones
    // one duration later each.
    const waiting = this.state === 'starting' || this.state === 'seeking';
    const headS = waiting ? (this.#slots.get(this.#current)?.startS ?? 0) : this.positionS;
    for (let seq = this.#current; seq <= this.#current + this.opts.bufferAheadSegments; seq++) {
      const slot = this.#slotFor(seq);
      if (!slot) break;
      slot.deadlineAt = now + Math.max(0, slot.startS - headS) * 1000;
      if (slot.requested) continue;
      slot.requested = true;
      this.engine.load(rendition, seq, slot.deadlineAt).then(
        (r) => {
          if (this.#destroyed) return;
          slot.ready = true;
          void r;
          this.#tick();
        },
        () => {
          slot.requested = false; // retried on the next tick (engine destroyed or dropped)
        },
      );
    }
  }

  #tick(): void {
    if (this.#destroyed || this.state === 'ended') return;
    this.#step();
    this.#arm();
  }

  #step(): void {
    const now = this.engine.clock.now();
    const elapsedS = (now - this.#lastTickAt) / 1000;
    this.#lastTickAt = now;
    if (this.#current === undefined) return this.#plan();
    const cur = this.#slots.get(this.#current);
    if (!cur) return this.#plan();

    if (this.state === 'starting') {
      if (cur.ready) {
        this.state = 'playing';
        this.#positionS = cur.startS;
        this.startupMs = now - this.#startedAt;
        this.emit('playing', { startupMs: this.startupMs, mediaSequence: this.#current });
        this.#enter(this.#current, true);
      }
    } else if (this.state === 'playing') {
      this.#positionS += elapsedS;
      // Move through segments whose end the playhead crossed.
      for (;;) {
        const slot = this.#slots.get(this.#current!)!;
        if (this.positionS < slot.startS + slot.seg.durationS) break;
        const next = this.#slotFor(this.#current! + 1);
        if (!next?.ready) {
          if (this.engine.ended && !next) {
            this.state = 'ended';
            this.emit('ended');
            return;
          }
          // The buffer ran dry: stall at the boundary.
          this.#positionS = slot.startS + slot.seg.durationS;
          this.state = 'stalled';
          this.stalls++;
          this.#stallStartedAt = now;
          this.emit('stall-started', { mediaSequence: this.#current! + 1 });
          this.#current = this.#current! + 1;
          break;
        }
        this.#current = this.#current! + 1;
        this.#enter(this.#current, true);
      }
    } else if (this.state === 'seeking') {
      if (cur.ready) {
        const waitMs = now - this.#seekStartedAt;
        this.seekWaitMs += waitMs;
        this.state = 'playing';
        this.#positionS = cur.startS;
        this.emit('seeked', { mediaSequence: this.#current, waitMs });
        this.#enter(this.#current, true);
      }
    } else if (this.state === 'stalled') {
      if (cur.ready && (this.bufferS >= this.opts.resumeBufferS || this.#nextUnknown())) {
        this.state = 'playing';
        this.#endStall(now);
        this.#enter(this.#current, false);
      }
    }
    this.#liveSync();
    this.#forget();
    this.#request();
    if (this.opts.abr && this.engine.opts.rendition === 'auto') this.#abr();
  }

  /** Counts the stall that ends now and says so. */
  #endStall(now: number): void {
    const d = now - (this.#stallStartedAt ?? now);
    this.stallMs += d;
    this.emit('stall-ended', { durationMs: d });
  }

  #nextUnknown(): boolean {
    return !this.engine.known.has((this.#current ?? 0) + 1);
  }

  #enter(seq: number, onTime: boolean): void {
    this.segmentsPlayed++;
    if (onTime) this.segmentsOnTime++;
    this.emit('segment-played', { mediaSequence: seq, readyBeforeDeadline: onTime });
  }

  /** Far behind live after stalls: jump to the live edge, as live players do. */
  #liveSync(): void {
    if (this.#behindByChoice) return;
    const latency = this.latencyS;
    const dur = this.engine.channelInfo?.segmentDurationS ?? 2;
    if (this.engine.ended || latency === undefined || latency <= this.opts.maxLatencySegments * dur) return;
    const target = this.engine.newestPublished - this.opts.startBehindSegments;
    const slot = this.#slotFor(target);
    if (!slot || target <= (this.#current ?? 0)) return;
    for (let s = this.#current!; s < target; s++) this.engine.drop(this.engine.rendition, s);
    this.emit('live-sync', { skippedSegments: target - this.#current! });
    this.#current = target;
    this.#positionS = slot.startS;
    if (!slot.ready) {
      if (this.state === 'playing') {
        this.state = 'stalled';
        this.stalls++;
        this.#stallStartedAt = this.engine.clock.now();
        this.emit('stall-started', { mediaSequence: target });
      }
    }
  }

  /**
   * Moves the playhead to the start of segment `mediaSequence`, one the playlist lists: back into the
   * window, or forward towards the live edge. The player waits in `seeking` until it is ready (the wait
   * is counted apart from stalls); requests ahead of the old position that the new one does not need
   * are dropped. Returns false (and does nothing) for a segment not listed, or before playback started.
   */
  seek(mediaSequence: number): boolean {
    if (this.#destroyed || this.state === 'ended' || this.state === 'starting') return false;
    const seg = this.engine.known.get(mediaSequence);
    if (!seg || seg.gap) return false;
    const now = this.engine.clock.now();
    // A stall ends here: what follows is the seek's wait.
    if (this.state === 'stalled') this.#endStall(now);
    const rendition = this.engine.rendition;
    const keep = (seq: number) =>
      seq >= mediaSequence && seq <= mediaSequence + this.opts.bufferAheadSegments;
    for (const [seq, slot] of this.#slots)
      if (slot.requested && !slot.ready && !keep(seq)) this.engine.drop(rendition, seq);
    // A new timeline from the target (slots are placed relative to one another).
    this.#slots.clear();
    this.#current = mediaSequence;
    this.#next = mediaSequence;
    this.#slotFor(mediaSequence);
    this.#positionS = 0;
    this.#lastTickAt = now;
    this.#behindByChoice = mediaSequence < this.engine.newestPublished - this.opts.startBehindSegments;
    this.seeks++;
    this.state = 'seeking';
    this.#seekStartedAt = now;
    this.emit('seeking', { mediaSequence });
    this.#tick(); // requests the target and what follows it
    return true;
  }

  /** Forgets slots far behind the playhead. */
  #forget(): void {
    if (this.#current === undefined) return;
    for (const seq of this.#slots.keys()) if (seq < this.#current - 4) this.#slots.delete(seq);
  }

  /** Throughput-based rendition choice with hysteresis. */
  #abr(): void {
    const { variants } = this.engine;
    if (variants.length < 2 || this.state !== 'playing') return;
    const bps = this.engine.httpThroughput.measured ? this.engine.httpThroughput.value * 8 : undefined;
    if (bps === undefined) return;
    const current = variants.find((v) => v.name === this.engine.rendition);
    const fit = [...variants].reverse().find((v) => v.bandwidthBps <= bps * 0.7) ?? variants[0]!;
    if (!current || fit.name === current.name) return;
    // Down at once when it no longer fits; up only with a clear margin and a healthy buffer.
    const down = current.bandwidthBps > bps * 0.9;
    const up = fit.bandwidthBps > current.bandwidthBps && this.bufferS >= 2;
    if (down || up) this.engine.setRendition(fit.name);
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.engine.clock.clearTimeout(this.#timer);
    this.removeAllListeners();
  }
}
