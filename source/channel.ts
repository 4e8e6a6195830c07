/**
 * A live channel: runs the encoder (supervised), publishes its segments with attestations, and keeps
 * the broadcast's recording. Inputs: test pattern, file (once or looped), or RTMP publishers.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import createDebug from 'debug';
import { TypedEmitter, type Attestation, type SourceErrorCode } from '../protocol/index.ts';
import { ConfigError, type ChannelSettings, type SourceInput } from './config.ts';
import { buildFfmpegPlan, workPlaylistPath } from './ffmpeg-args.ts';
import { FfmpegRun, findFfmpeg, probeMediaFile, type FfmpegBinaries } from './ffmpeg-run.ts';
import { parseWorkPlaylist } from './playlists.ts';
import { ChannelStore, entryDurationMs, type Broadcast } from './store.ts';

export interface RestartPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
  /** A run that lasted this long resets the backoff. */
  stableAfterMs: number;
}

export const DEFAULT_RESTART: RestartPolicy = {
  initialDelayMs: 500,
  maxDelayMs: 15_000,
  stableAfterMs: 30_000,
};

/** How a new publisher takes over from the one on air. */
export interface TakeoverPolicy {
  /**
   * A publisher that sent no audio or video for this long is silent (hung, SIGSTOPped, half-open TCP)
   * and a new publisher with the right key replaces it at once. Encoders send 25–60 frames a second.
   */
  silentPublisherMs: number;
  /** The replaced run's encoder gets this long to flush its last segment (SIGINT) before SIGKILL. */
  encoderStopGraceMs: number;
}

export const DEFAULT_TAKEOVER: TakeoverPolicy = {
  silentPublisherMs: 1500,
  encoderStopGraceMs: 3000,
};

/** An RTMP publisher as the channel sees it (implemented by the ingest server). */
export interface IngestSession {
  readonly id: string;
  readonly hasAudio: boolean;
  /** When it last sent audio or video (`Date.now()` clock); publishers silent too long can be replaced. */
  readonly lastMediaAtMs: number;
  /** A new FLV byte stream (header, metadata, codec config, then from the next keyframe). */
  openFlv(): Readable;
  /** Resolves when the publisher is gone: `clean` when it unpublished, false when the connection dropped. */
  readonly closed: Promise<{ clean: boolean }>;
  /** Closes the publisher's connection. Idempotent. */
  destroy(reason: string): void;
}

export type ChannelStatus = 'idle' | 'live' | 'ended';

export interface EncoderExitInfo {
  code: number | null;
  signal: string | null;
  runMs: number;
  stderrTail: string[];
  /** What happens next (`replaced`: a new publisher took over; its run starts now). */
  next: 'restart' | 'end' | 'await-publisher' | 'replaced';
  restartDelayMs?: number;
}

export type SourceChannelEvents = {
  /** A segment was published; its attestation is available from now on. */
  segment: (attestation: Attestation) => void;
  gap: (info: { rendition: string; mediaSequence: number }) => void;
  'broadcast-started': (broadcast: Broadcast) => void;
  'broadcast-ended': (broadcast: Broadcast) => void;
  'encoder-started': (info: {
    pid: number | undefined;
    firstSequence: number;
    discontinuitySequence: number;
  }) => void;
  'encoder-exit': (info: EncoderExitInfo) => void;
  /**
   * A new RTMP publisher took over from the previous one, which was gone (connection closed), silent
   * (no media for `silentPublisherMs`) or whose encoder was restarting. The broadcast continues after a
   * discontinuity once the previous run's encoder has exited.
   */
  'publisher-replaced': (info: {
    previous: string;
    next: string;
    reason: 'gone' | 'silent' | 'encoder-restarting';
  }) => void;
  /** Runtime failures with a stable code: 'encoder-crashed', 'publish-failed', 'publisher-refused'. */
  error: (info: { code: SourceErrorCode; message: string }) => void;
};

interface Run {
  ffmpeg: FfmpegRun;
  workDir: string;
  firstSequence: number;
  discontinuitySequence: number;
  /** Next ffmpeg segment index expected, per rendition. */
  nextIndex: Map<string, number>;
  watchers: fs.FSWatcher[];
  poll: NodeJS.Timeout;
  session: IngestSession | undefined;
  /** Set once the publisher is gone (its encoder then sees the end of its stdin and exits). */
  sessionEnd: { clean: boolean } | undefined;
  published: number;
  /** A new publisher took over: this run's exit starts the next run (no restart, no reconnect grace). */
  replaced: boolean;
}

/** A publisher that took over and waits for the replaced run's encoder to exit. */
interface Incoming {
  session: IngestSession;
  end: { clean: boolean } | undefined;
}

let runCounter = 0;

export class SourceChannel extends TypedEmitter<SourceChannelEvents> {
  readonly settings: ChannelSettings;
  readonly input: SourceInput;
  readonly store: ChannelStore;
  readonly #restart: RestartPolicy;
  readonly #reconnectGraceMs: number;
  readonly #takeover: TakeoverPolicy;
  readonly #debug: createDebug.Debugger;
  #bins: FfmpegBinaries | undefined;
  #hasAudio = true;
  #run: Run | undefined;
  #broadcast: Broadcast | undefined;
  #failures = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  /** The run whose encoder waits in {@link #restartTimer} to be restarted. */
  #restartRun: Run | undefined;
  #incoming: Incoming | undefined;
  #graceTimer: NodeJS.Timeout | undefined;
  #ending: Promise<void> | undefined;
  #destroying: Promise<void> | undefined;
  #destroyed = false;

  constructor(opts: {
    settings: ChannelSettings;
    input: SourceInput;
    dataDir: string;
    binaries?: FfmpegBinaries;
    restart?: Partial<RestartPolicy>;
    /** RTMP: how long a dropped publisher may take to come back before the broadcast ends. */
    reconnectGraceMs?: number;
    /** RTMP: when a new publisher replaces the one on air. */
    takeover?: Partial<TakeoverPolicy>;
  }) {
    super();
    this.settings = opts.settings;
    this.input = opts.input;
    this.#bins = opts.binaries;
    this.#restart = { ...DEFAULT_RESTART, ...opts.restart };
    if (this.#restart.initialDelayMs > this.#restart.maxDelayMs)
      throw new ConfigError('restart initialDelayMs must not exceed maxDelayMs');
    this.#reconnectGraceMs = opts.reconnectGraceMs ?? 30_000;
    this.#takeover = { ...DEFAULT_TAKEOVER, ...opts.takeover };
    if (!(this.#takeover.silentPublisherMs > 0) || !(this.#takeover.encoderStopGraceMs > 0))
      throw new ConfigError('takeover silentPublisherMs and encoderStopGraceMs must be positive');
    this.#debug = createDebug(`peertv:source:channel:${opts.settings.id}`);
    this.store = new ChannelStore(opts.dataDir, opts.settings.id);
    fs.rmSync(this.store.workRoot, { recursive: true, force: true });
  }

  get status(): ChannelStatus {
    if (this.#broadcast && this.#broadcast.endedAtMs === null) return 'live';
    return this.store.broadcasts().length > 0 ? 'ended' : 'idle';
  }

  /** The broadcast on air, or the last one. */
  get broadcast(): Broadcast | undefined {
    return this.#broadcast ?? this.store.broadcasts()[0];
  }

  get hasAudio(): boolean {
    return this.broadcast?.hasAudio ?? this.#hasAudio;
  }

  get encoderPid(): number | undefined {
    return this.#run?.ffmpeg.pid;
  }

  /**
   * Checks the input and starts broadcasting (test pattern, file). For RTMP the channel waits for
   * publishers handed over by the ingest server ({@link acceptPublisher}). Bad input throws a ConfigError.
   */
  async start(): Promise<void> {
    if (this.#destroyed || this.#ending) throw new Error('channel was stopped');
    this.#bins ??= findFfmpeg();
    if (this.input.kind === 'file') {
      const probe = await probeMediaFile(this.input.path, this.#bins);
      this.#hasAudio = probe.hasAudio;
    }
    if (this.input.kind === 'rtmp') return;
    this.#beginBroadcast();
    this.#startRun(undefined);
  }

  /**
   * Hands an authenticated RTMP publisher to the channel. It goes on air at once when nobody is, and
   * takes over when the publisher on air is gone (connection closed), silent (no media for
   * `silentPublisherMs`) or its encoder is restarting. It is refused while another one is actively on air.
   */
  acceptPublisher(session: IngestSession): boolean {
    if (this.#destroyed || this.#ending || this.input.kind !== 'rtmp') return false;
    const refuse = (): false => {
      this.emit('error', {
        code: 'publisher-refused',
        message: `channel ${this.settings.id} already has a publisher`,
      });
      return false;
    };
    const silent = (s: IngestSession) => Date.now() - s.lastMediaAtMs >= this.#takeover.silentPublisherMs;
    this.#bins ??= findFfmpeg();

    // A takeover in progress: the publisher waiting for the old encoder to exit may itself be replaced.
    const incoming = this.#incoming;
    if (incoming) {
      const reason = incoming.end ? 'gone' : silent(incoming.session) ? 'silent' : undefined;
      if (!reason) return refuse();
      this.#replaced(incoming.session, session, reason);
      incoming.session.destroy('replaced by a new publisher');
      this.#waitFor(session);
      return true;
    }

    // Our encoder crashed and waits to restart with the previous publisher: the new one goes on air now.
    const waiting = this.#restartRun;
    if (waiting && this.#restartTimer) {
      clearTimeout(this.#restartTimer);
      this.#restartTimer = undefined;
      this.#restartRun = undefined;
      if (waiting.session) {
        this.#replaced(waiting.session, session, 'encoder-restarting');
        waiting.session.destroy('replaced by a new publisher');
      }
      this.#startPublisherRun(session);
      return true;
    }

    const run = this.#run;
    if (run?.session) {
      const reason = run.sessionEnd
        ? 'gone'
        : run.ffmpeg.exited
          ? 'encoder-restarting'
          : silent(run.session)
            ? 'silent'
            : undefined;
      if (!reason) return refuse();
      // The run must exit (flushing its last segment) before the next one starts: numbers come from the store.
      this.#replaced(run.session, session, reason);
      run.replaced = true;
      run.session.destroy('replaced by a new publisher');
      run.ffmpeg.end(this.#takeover.encoderStopGraceMs);
      this.#waitFor(session);
      return true;
    }

    this.#startPublisherRun(session);
    return true;
  }

  #replaced(
    previous: IngestSession,
    next: IngestSession,
    reason: 'gone' | 'silent' | 'encoder-restarting',
  ): void {
    this.#debug('publisher %s replaces %s (%s)', next.id, previous.id, reason);
    this.emit('publisher-replaced', { previous: previous.id, next: next.id, reason });
  }

  #waitFor(session: IngestSession): void {
    const incoming: Incoming = { session, end: undefined };
    this.#incoming = incoming;
    void session.closed.then((end) => (incoming.end = end));
  }

  /** Puts a publisher on air: continues the open broadcast (after a discontinuity) or begins one. */
  #startPublisherRun(session: IngestSession): void {
    this.#hasAudio = session.hasAudio;
    this.#failures = 0;
    if (this.#graceTimer) {
      clearTimeout(this.#graceTimer);
      this.#graceTimer = undefined;
    }
    const b = this.#broadcast;
    if (!b || b.endedAtMs !== null || b.hasAudio !== session.hasAudio) {
      this.#endBroadcast();
      this.#beginBroadcast();
    }
    this.#startRun(session);
  }

  #beginBroadcast(): void {
    this.#broadcast = this.store.startBroadcast({
      title: this.settings.title,
      firstSequence: this.store.nextSequence(),
      ladder: this.settings.ladder,
      hasAudio: this.#hasAudio,
      fps: this.settings.fps,
      segmentDurationS: this.settings.segmentDurationS,
    });
    this.#failures = 0;
    this.emit('broadcast-started', this.#broadcast);
  }

  #endBroadcast(): void {
    const b = this.#broadcast;
    if (!b || b.endedAtMs !== null) return;
    this.store.endBroadcast(b.id);
    this.emit('broadcast-ended', b);
  }

  #startRun(session: IngestSession | undefined): void {
    const bins = this.#bins!;
    const firstSequence = this.store.nextSequence();
    const lastDisc = this.store.lastDiscontinuity();
    const discontinuitySequence = lastDisc < 0 ? 0 : lastDisc + 1;
    this.#fillGaps(firstSequence);
    const workDir = path.join(this.store.workRoot, `run-${process.pid}-${++runCounter}`);
    for (const r of this.settings.ladder) fs.mkdirSync(path.join(workDir, r.name), { recursive: true });
    const plan = buildFfmpegPlan(this.settings, this.input, { workDir, hasAudio: this.#hasAudio });
    const ffmpeg = new FfmpegRun(plan, bins, session?.openFlv());
    const run: Run = {
      ffmpeg,
      workDir,
      firstSequence,
      discontinuitySequence,
      nextIndex: new Map(this.settings.ladder.map((r) => [r.name, 0])),
      watchers: [],
      poll: setInterval(() => this.#scanAll(run), 250),
      session,
      sessionEnd: undefined,
      published: 0,
      replaced: false,
    };
    void session?.closed.then((end) => (run.sessionEnd = end));
    for (const r of this.settings.ladder) {
      try {
        const w = fs.watch(path.join(workDir, r.name), (_event, file) => {
          if (file === 'index.m3u8') this.#scan(run, r.name);
        });
        w.on('error', () => w.close());
        run.watchers.push(w);
      } catch (err) {
        this.#debug('watch failed, polling only: %s', (err as Error).message);
      }
    }
    this.#run = run;
    ffmpeg.on('exit', (info) => this.#onExit(run, info));
    ffmpeg.once('spawn', (pid) => {
      this.#debug(
        'encoder pid %d from sequence %d (discontinuity %d)',
        pid,
        firstSequence,
        discontinuitySequence,
      );
      this.emit('encoder-started', { pid, firstSequence, discontinuitySequence });
    });
  }

  /** Renditions that fell behind when an encoder died get EXT-X-GAP entries so numbers stay aligned. */
  #fillGaps(upTo: number): void {
    const b = this.#broadcast;
    if (!b) return;
    for (const r of this.settings.ladder) {
      const latest = this.store.latest(r.name, b.firstSequence);
      if (!latest) continue;
      const disc = this.store.lastDiscontinuity();
      for (let seq = this.store.nextSequenceOf(r.name); seq < upTo; seq++) {
        const sibling = this.settings.ladder
          .map((o) => this.store.entry(o.name, seq))
          .find((e) => e?.kind === 'segment');
        const durationMs = sibling ? entryDurationMs(sibling) : this.settings.segmentDurationS * 1000;
        this.store.publishGap({
          rendition: r.name,
          mediaSequence: seq,
          discontinuitySequence: disc,
          durationMs,
        });
        this.emit('gap', { rendition: r.name, mediaSequence: seq });
      }
    }
  }

  #scanAll(run: Run): void {
    for (const r of this.settings.ladder) this.#scan(run, r.name);
  }

  #scan(run: Run, rendition: string): void {
    if (this.#run !== run && !run.ffmpeg.exited) return;
    let text: string;
    try {
      text = fs.readFileSync(workPlaylistPath(run.workDir, rendition), 'utf8');
    } catch {
      return; // not written yet
    }
    for (const seg of parseWorkPlaylist(text)) {
      const expected = run.nextIndex.get(rendition)!;
      if (seg.index < expected) continue;
      const file = path.join(run.workDir, rendition, `${seg.index}.ts`);
      if (seg.index > expected) {
        // ffmpeg dropped a segment from its list before we saw it: should not happen; keep numbering honest.
        this.emit('error', {
          code: 'publish-failed',
          message: `${rendition}: missed encoder segment ${expected}`,
        });
        for (let i = expected; i < seg.index; i++)
          this.store.publishGap({
            rendition,
            mediaSequence: run.firstSequence + i,
            discontinuitySequence: run.discontinuitySequence,
            durationMs: seg.durationS * 1000,
          });
      }
      run.nextIndex.set(rendition, seg.index + 1);
      try {
        const attestation = this.store.publishSegment({
          rendition,
          mediaSequence: run.firstSequence + seg.index,
          discontinuitySequence: run.discontinuitySequence,
          durationMs: seg.durationS * 1000,
          file,
        });
        run.published++;
        this.emit('segment', attestation);
      } catch (err) {
        this.emit('error', {
          code: 'publish-failed',
          message: `${rendition}/${seg.index}: ${(err as Error).message}`,
        });
        this.store.publishGap({
          rendition,
          mediaSequence: run.firstSequence + seg.index,
          discontinuitySequence: run.discontinuitySequence,
          durationMs: seg.durationS * 1000,
        });
      }
    }
  }

  #onExit(run: Run, info: { code: number | null; signal: string | null; stderrTail: string[] }): void {
    clearInterval(run.poll);
    for (const w of run.watchers) w.close();
    this.#scanAll(run); // the last segment, flushed on a clean exit
    fs.rmSync(run.workDir, { recursive: true, force: true });
    if (this.#run === run) this.#run = undefined;
    const runMs = Date.now() - run.ffmpeg.startedAtMs;
    const base = { code: info.code, signal: info.signal, runMs, stderrTail: info.stderrTail };

    if (this.#ending || this.#destroyed) {
      this.emit('encoder-exit', { ...base, next: 'end' });
      return;
    }
    const inputEnded = this.input.kind === 'file' && !this.input.loop && info.code === 0;
    if (inputEnded) {
      this.emit('encoder-exit', { ...base, next: 'end' });
      this.#endBroadcast();
      return;
    }
    if (run.replaced) {
      const next = this.#incoming;
      this.#incoming = undefined;
      if (next && !next.end) {
        this.emit('encoder-exit', { ...base, next: 'replaced' });
        this.#startPublisherRun(next.session);
      } else this.#afterPublisherRun(run, base, next?.end?.clean ?? false); // the newcomer left meanwhile
      return;
    }
    if (run.session && run.sessionEnd) {
      this.#afterPublisherRun(run, base, run.sessionEnd.clean);
      return;
    }
    if (runMs >= this.#restart.stableAfterMs && run.published > 0) this.#failures = 0;
    const delay = Math.min(this.#restart.maxDelayMs, this.#restart.initialDelayMs * 2 ** this.#failures++);
    this.emit('encoder-exit', { ...base, next: 'restart', restartDelayMs: delay });
    const detail = info.stderrTail.slice(-3).join(' | ');
    this.emit('error', {
      code: 'encoder-crashed',
      message: `ffmpeg exited (code ${info.code}, signal ${info.signal}); restarting in ${delay} ms. ${detail}`,
    });
    this.#restartRun = run;
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      this.#restartRun = undefined;
      if (this.#ending || this.#destroyed) return;
      // A publisher that left while we waited ends (or suspends) the broadcast instead.
      if (run.session && run.sessionEnd) this.#afterPublisherRun(run, base, run.sessionEnd.clean);
      else this.#startRun(run.session);
    }, delay);
  }

  #afterPublisherRun(run: Run, base: Omit<EncoderExitInfo, 'next'>, clean: boolean): void {
    if (clean) {
      this.emit('encoder-exit', { ...base, next: 'end' });
      this.#endBroadcast();
      return;
    }
    // Lost input: keep the broadcast open for a while; a returning publisher continues it.
    this.emit('encoder-exit', { ...base, next: 'await-publisher' });
    this.#graceTimer = setTimeout(() => {
      this.#graceTimer = undefined;
      if (!this.#run) this.#endBroadcast();
    }, this.#reconnectGraceMs);
    this.#debug('publisher %s lost; waiting %d ms', run.session?.id, this.#reconnectGraceMs);
  }

  /**
   * Ends the broadcast gracefully: publishers are let go, the encoder flushes its last segment, the
   * recording is finalized (ENDLIST). The channel takes no new broadcast afterwards. Idempotent.
   */
  end(): Promise<void> {
    this.#ending ??= (async () => {
      clearTimeout(this.#restartTimer);
      clearTimeout(this.#graceTimer);
      this.#restartRun?.session?.destroy('broadcast stopped');
      this.#restartRun = undefined;
      this.#incoming?.session.destroy('broadcast stopped');
      this.#incoming = undefined;
      const run = this.#run;
      if (run && !run.ffmpeg.exited) {
        const exited = new Promise<void>((resolve) => run.ffmpeg.once('exit', () => setImmediate(resolve)));
        if (run.session) run.session.destroy('broadcast stopped');
        run.ffmpeg.end();
        await exited;
      }
      this.#endBroadcast();
    })();
    return this.#ending;
  }

  /**
   * Tears the channel down: ends the broadcast (see {@link end}), then releases the store (indexes,
   * directory lock) and drops every listener. Idempotent: every call returns the same promise.
   */
  destroy(): Promise<void> {
    this.#destroying ??= (async () => {
      await this.end();
      this.#destroyed = true;
      this.store.destroy();
      this.removeAllListeners();
    })();
    return this.#destroying;
  }
}
