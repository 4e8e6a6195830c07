/**
 * One neighbour: the wire protocol over a PeerLink (handshake, announcements, requests, chunked data),
 * what the neighbour holds, and how fast and how reliably it delivers. Malformed input closes the link
 * with a stable code, and so does input beyond the neighbour's budget (budget.ts): too many messages,
 * announcements of renditions outside the ladder or too fragmented, data nobody asked for.
 */
import {
  decodeMessage,
  encodeMessageTransient,
  HaveSet,
  MAX_SEGMENT_BYTES,
  TypedEmitter,
  WIRE_VERSION,
  WireError,
  type AbsentReason,
  type ByeCode,
  type PeerErrorCode,
  type WireMessage,
} from '../../protocol/index.ts';
import {
  budgetOptions,
  DebtBucket,
  SupplierStanding,
  UNKNOWN_LADDER,
  type BudgetOptions,
  type StreamLadder,
} from './budget.ts';
import { Ewma, MIN_THROUGHPUT_SAMPLE_BYTES, PRIOR_NEIGHBOUR_BPS } from './estimators.ts';
import type { Clock, PeerLink, TimerHandle } from './seams.ts';

export interface Download {
  requestId: number;
  rendition: string;
  mediaSequence: number;
  startedAt: number;
  lastProgressAt: number;
  firstByteAt: number | undefined;
  received: number;
  totalBytes: number | undefined;
  buffer: Uint8Array | undefined;
  /** Asked while the neighbour was still receiving the segment: it relays it as it arrives. */
  relayed: boolean;
  /** Settles with the segment's (not yet verified) bytes, or a DownloadAbort. */
  promise: Promise<Uint8Array>;
  resolve: (bytes: Uint8Array) => void;
  reject: (err: Error) => void;
}

export type NeighbourEvents = {
  /** Handshake done: requests can flow. */
  open: () => void;
  have: (info: { rendition: string; ranges: [number, number][]; reset: boolean }) => void;
  /** The neighbour is receiving a segment (it can be requested from it already). */
  receiving: (info: { rendition: string; mediaSequence: number }) => void;
  /** The neighbour asks us for a segment. */
  request: (req: { requestId: number; rendition: string; mediaSequence: number; deadlineMs: number }) => void;
  cancel: (requestId: number) => void;
  close: (info: { reason: string; code: PeerErrorCode | undefined }) => void;
};

/**
 * Why a download ended without its bytes. An expected outcome, not a fault (every cancel, `absent`
 * and closed link makes one): it captures no stack trace, which would cost more than the rest of it.
 */
export class DownloadAbort extends Error {
  readonly reason: 'absent' | 'closed' | 'cancelled' | 'bad-data';

  constructor(message: string, reason: 'absent' | 'closed' | 'cancelled' | 'bad-data') {
    // V8 reads the limit when the error is made; other engines ignore it.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.reason = reason;
  }
}

const HELLO_TIMEOUT_MS = 10_000;
/** A relay too slow for a deadline is not asked for anything for this long… */
const RELAY_BACKOFF_MS = 2000;
/** …and this many such failures in a row, without a delivery between, count as one failure. */
const RELAY_FAILURES_PER_FAILURE = 4;
/** Segments remembered per rendition as on their way to a neighbour (the oldest forgotten first). */
const MAX_RECEIVING = 8;
const BUSY_BACKOFF_MS = 1000;

export interface NeighbourDeps {
  /** The channel's renditions and bitrate (announcements of other renditions are not held). */
  ladder: StreamLadder;
  budget: Partial<BudgetOptions>;
  /** A transfer (even partial) says something about the neighbour's throughput from this many bytes on. */
  minThroughputSampleBytes: number;
  /** Its throughput until measured (bytes/s). */
  priorBps: number;
}

/** Why a transfer from a neighbour failed (each one demotes it; a few in a row close the link). */
export type SupplyFailure = 'withheld' | 'stalled' | 'too slow';

export class Neighbour extends TypedEmitter<NeighbourEvents> {
  readonly id: string;
  readonly link: PeerLink;
  /** What the neighbour holds, per rendition. */
  readonly holds = new Map<string, HaveSet>();
  /** What it said it is receiving and does not hold yet, per rendition (at most {@link MAX_RECEIVING}). */
  readonly #receiving = new Map<string, Set<number>>();
  /** Called after each chunk of one of our downloads from it arrived (relays forward it). */
  onProgress: ((d: Download, first: boolean) => void) | undefined;
  /** Delivery rate from this neighbour (bytes/s), and time to first byte (ms). */
  // Prior before the first transfer: 1.5 MB/s (a modest residential uplink), so new neighbours get tried.
  readonly throughput: Ewma;
  readonly firstByteMs = new Ewma(0.4, 150);
  readonly downloads = new Map<number, Download>();
  readonly connectedAt: number;
  bytesReceived = 0;
  bytesSent = 0;
  /** Data bytes read that answered no request of ours in progress (late, or never asked for). */
  unrequestedBytes = 0;
  /** Answered `busy`: not asked again before this time (clock ms). */
  busyUntil = 0;
  /** Its record as a supplier of ours: failures in a row, demotion. */
  readonly standing: SupplierStanding;
  readonly budget: BudgetOptions;
  readonly ladder: StreamLadder;
  readonly #minSampleBytes: number;
  #open = false;
  #closed = false;
  #nextRequestId = 1;
  #helloTimer: TimerHandle | undefined;
  readonly #messages: DebtBucket;
  /** Rendition names outside the ladder it mentioned (ignored). */
  readonly #unknownRenditions = new Set<string>();
  /** Bytes of cancelled requests it may still send us. */
  #lateAllowance = 0;
  /** Relays from it that failed in a row (see {@link relayFailed}). */
  #relayFailures = 0;

  constructor(
    link: PeerLink,
    private readonly clock: Clock,
    private readonly local: { peerId: string; channel: string },
    deps: Partial<NeighbourDeps> = {},
  ) {
    super();
    this.id = link.remoteId;
    this.link = link;
    this.connectedAt = clock.now();
    this.budget = budgetOptions(deps.budget);
    this.ladder = deps.ladder ?? UNKNOWN_LADDER;
    this.#minSampleBytes = deps.minThroughputSampleBytes ?? MIN_THROUGHPUT_SAMPLE_BYTES;
    this.throughput = new Ewma(0.4, deps.priorBps ?? PRIOR_NEIGHBOUR_BPS);
    this.standing = new SupplierStanding(this.budget);
    this.#messages = new DebtBucket(
      clock.now(),
      () => this.budget.messagesPerS,
      () => this.budget.messageBurst,
    );
    link.on('connect', () => {
      this.#send({ type: 'hello', version: WIRE_VERSION, peerId: local.peerId, channel: local.channel });
      // The Transport contract has 'connect' before any data, so no hello can have come yet.
      if (!this.#open)
        this.#helloTimer = clock.setTimeout(() => this.destroy('peer-timeout', 'no hello'), HELLO_TIMEOUT_MS);
    });
    link.on('data', (bytes) => this.#onData(bytes));
    link.on('close', (reason) => this.#onClosed(reason, undefined));
  }

  get open(): boolean {
    return this.#open && !this.#closed;
  }

  get closed(): boolean {
    return this.#closed;
  }

  holdsSegment(rendition: string, seq: number): boolean {
    return this.holds.get(rendition)?.has(seq) ?? false;
  }

  /** It said it is receiving the segment, and has not announced it held since. */
  receivingSegment(rendition: string, seq: number): boolean {
    return this.#receiving.get(rendition)?.has(seq) ?? false;
  }

  /** Not to be asked for segments now (a recent failure; see {@link failed}). */
  get demoted(): boolean {
    return this.standing.demoted(this.clock.now());
  }

  announce(rendition: string, ranges: [number, number][], reset: boolean): void {
    if (this.open && (reset || ranges.length > 0)) this.#send({ type: 'have', rendition, reset, ranges });
  }

  announceReceiving(rendition: string, mediaSequence: number): void {
    if (this.open) this.#send({ type: 'receiving', rendition, mediaSequence });
  }

  announceLost(rendition: string, ranges: [number, number][]): void {
    if (this.open && ranges.length > 0) this.#send({ type: 'lost', rendition, ranges });
  }

  /** Requests a whole segment; resolves with its (unverified) bytes. */
  request(rendition: string, mediaSequence: number, deadlineMs: number, expectedBytes?: number): Download {
    const requestId = this.#nextRequestId++;
    const now = this.clock.now();
    let resolve!: (b: Uint8Array) => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<Uint8Array>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => {}); // the owner handles rejections through the returned download
    const d: Download = {
      promise,
      requestId,
      rendition,
      mediaSequence,
      startedAt: now,
      lastProgressAt: now,
      firstByteAt: undefined,
      received: 0,
      totalBytes: expectedBytes,
      buffer: undefined,
      relayed: !this.holdsSegment(rendition, mediaSequence),
      resolve,
      reject,
    };
    this.downloads.set(requestId, d);
    this.#send({
      type: 'request',
      requestId,
      rendition,
      mediaSequence,
      deadlineMs: Math.max(0, Math.round(deadlineMs)),
    });
    return d;
  }

  cancel(d: Download, why = 'cancelled'): void {
    if (!this.downloads.delete(d.requestId)) return;
    if (this.open) this.#send({ type: 'cancel', requestId: d.requestId });
    // What the sender had queued may still come: allow that much (never more than the segment's rest).
    const rest = d.totalBytes !== undefined ? d.totalBytes - d.received : Infinity;
    this.#lateAllowance = Math.min(
      this.budget.maxLateBytes,
      this.#lateAllowance + Math.min(rest, this.budget.lateBytesPerCancel),
    );
    // A partial transfer big enough to time says how fast the neighbour really is.
    const elapsedS = (this.clock.now() - (d.firstByteAt ?? d.startedAt)) / 1000;
    if (d.received >= this.#minSampleBytes && elapsedS > 0) this.throughput.add(d.received / elapsedS);
    d.reject(new DownloadAbort(why, 'cancelled'));
  }

  /**
   * A transfer from this neighbour failed: withheld (it announced the segment, then answered
   * `not-held`), stalled, or too slow for the deadline. It is demoted for a cooling time that doubles
   * with each failure in a row; after `maxFailures` in a row without a delivery between, the link
   * closes (`peer-unresponsive`). An honest neighbour that is slow once is only demoted briefly.
   */
  failed(why: SupplyFailure): void {
    if (this.#closed) return;
    if (this.standing.fail(this.clock.now()))
      this.destroy('peer-unresponsive', `${this.standing.failures} transfers in a row failed (last: ${why})`);
  }

  /**
   * A relay from it stalled or came too late. Its own supplier may be the slow one, so it is only left
   * alone for a while; but a neighbour whose relays keep failing (it announces `receiving` and drips)
   * earns a failure every few, with the demotion and, in the end, the closing that go with it.
   */
  relayFailed(why: SupplyFailure): void {
    if (this.#closed) return;
    this.busyUntil = Math.max(this.busyUntil, this.clock.now() + RELAY_BACKOFF_MS);
    if (++this.#relayFailures < RELAY_FAILURES_PER_FAILURE) return;
    this.#relayFailures = 0;
    this.failed(why);
  }

  sendData(requestId: number, offset: number, totalBytes: number, bytes: Uint8Array): void {
    this.bytesSent += bytes.byteLength;
    this.#send({ type: 'data', requestId, offset, totalBytes, bytes });
  }

  sendAbsent(requestId: number, reason: AbsentReason): void {
    this.#send({ type: 'absent', requestId, reason });
  }

  /**
   * Closes the link; with an error code, tells the neighbour why first (`bye`: nothing wrong).
   * Idempotent; emits `close` once.
   */
  destroy(code: ByeCode = 'bye', reason = 'destroyed'): void {
    if (this.#closed) return;
    if (this.link.connected) this.#send({ type: 'bye', code });
    this.#onClosed(reason, code === 'bye' ? undefined : code);
    this.link.destroy(reason);
  }

  #send(msg: WireMessage): void {
    if (this.#closed || !this.link.connected) return;
    try {
      // The link copies what it sends: the encoder's own buffer will do.
      this.link.send(encodeMessageTransient(msg));
    } catch (err) {
      this.#onClosed(`send failed: ${(err as Error).message}`, undefined);
      this.link.destroy('send failed');
    }
  }

  #onData(bytes: Uint8Array): void {
    if (this.#closed) return;
    let msg: WireMessage;
    try {
      msg = decodeMessage(bytes);
    } catch (err) {
      const code = err instanceof WireError ? err.code : 'peer-protocol-violation';
      return this.destroy(code, `malformed message: ${(err as Error).message}`);
    }
    if (!this.#open && msg.type !== 'hello')
      return this.destroy('peer-protocol-violation', `${msg.type} before hello`);
    // Data is budgeted by what we asked for (#onChunk); everything else by a message rate.
    if (msg.type !== 'data' && !this.#messages.take(this.clock.now(), 1))
      return this.destroy('peer-over-budget', `more than ${this.budget.messagesPerS} messages/s`);
    switch (msg.type) {
      case 'hello':
        if (this.#open) return this.destroy('peer-protocol-violation', 'second hello');
        if (msg.version !== WIRE_VERSION)
          return this.destroy('peer-version-mismatch', `version ${msg.version}`);
        if (msg.channel !== this.local.channel) return this.destroy('peer-wrong-channel', msg.channel);
        if (msg.peerId !== this.id) return this.destroy('peer-protocol-violation', 'hello from another id');
        this.clock.clearTimeout(this.#helloTimer);
        this.#open = true;
        this.emit('open');
        return;
      case 'have': {
        if (!this.#mayHold(msg.rendition)) return;
        let set = this.holds.get(msg.rendition);
        if (msg.reset || !set) this.holds.set(msg.rendition, (set = HaveSet.fromRanges(msg.ranges)));
        else for (const [a, b] of msg.ranges) set.addRange(a, b);
        if (set.rangeCount > this.budget.maxHaveRanges) {
          this.holds.delete(msg.rendition);
          return this.destroy('peer-over-budget', `announcement of ${msg.rendition} too fragmented`);
        }
        this.#forgetReceiving(msg.rendition, set);
        this.emit('have', { rendition: msg.rendition, ranges: msg.ranges, reset: msg.reset });
        return;
      }
      case 'receiving': {
        if (!this.#mayHold(msg.rendition) || this.holdsSegment(msg.rendition, msg.mediaSequence)) return;
        let set = this.#receiving.get(msg.rendition);
        if (!set) this.#receiving.set(msg.rendition, (set = new Set()));
        set.delete(msg.mediaSequence);
        set.add(msg.mediaSequence);
        if (set.size > MAX_RECEIVING) set.delete(set.values().next().value!);
        this.emit('receiving', { rendition: msg.rendition, mediaSequence: msg.mediaSequence });
        return;
      }
      case 'lost': {
        for (const [a, b] of msg.ranges) this.holds.get(msg.rendition)?.remove(a, b);
        const set = this.#receiving.get(msg.rendition);
        if (set)
          for (const seq of set) if (msg.ranges.some(([a, b]) => seq >= a && seq <= b)) set.delete(seq);
        return;
      }
      case 'request':
        this.emit('request', msg);
        return;
      case 'cancel':
        this.emit('cancel', msg.requestId);
        return;
      case 'absent': {
        const d = this.downloads.get(msg.requestId);
        if (!d) return;
        this.downloads.delete(msg.requestId);
        d.reject(new DownloadAbort(`neighbour answered ${msg.reason}`, 'absent'));
        // Asked while it said it was receiving the segment: its own transfer may have failed since.
        const onItsWay = this.#receiving.get(d.rendition)?.delete(d.mediaSequence) ?? false;
        // Busy: leave it alone for a while. Otherwise it does not have it after all: forget the
        // announcement, and count it against the neighbour (it announced the segment, then withheld it).
        if (msg.reason === 'busy') this.busyUntil = this.clock.now() + BUSY_BACKOFF_MS;
        else if (!onItsWay || this.holdsSegment(d.rendition, d.mediaSequence)) {
          this.holds.get(d.rendition)?.remove(d.mediaSequence, d.mediaSequence);
          this.failed('withheld');
        }
        return;
      }
      case 'data':
        return this.#onChunk(msg);
      case 'bye':
        this.#onClosed(`neighbour said ${msg.code}`, undefined);
        this.link.destroy('bye');
        return;
    }
  }

  /** Segments now announced as held are no longer on their way. */
  #forgetReceiving(rendition: string, held: HaveSet): void {
    const set = this.#receiving.get(rendition);
    if (set) for (const seq of set) if (held.has(seq)) set.delete(seq);
  }

  /**
   * Whether announcements of `rendition` are held: renditions of the ladder are; others are ignored,
   * and a neighbour naming too many of them is closed. Before the ladder is known, a few are held.
   */
  #mayHold(rendition: string): boolean {
    const known = this.ladder.has(rendition);
    if (known === true || this.holds.has(rendition)) return true;
    const max = this.budget.maxUnknownRenditions;
    if (known === undefined) {
      if (this.holds.size < max) return true;
      this.destroy('peer-over-budget', `announces more than ${max} renditions`);
      return false;
    }
    this.#unknownRenditions.add(rendition);
    if (this.#unknownRenditions.size > max)
      this.destroy(
        'peer-protocol-violation',
        `announces ${this.#unknownRenditions.size} renditions not in the ladder`,
      );
    return false;
  }

  #onChunk(msg: Extract<WireMessage, { type: 'data' }>): void {
    const d = this.downloads.get(msg.requestId);
    if (!d) {
      this.unrequestedBytes += msg.bytes.byteLength;
      // Never asked for: a violation. Late chunks of a request we cancelled are expected, up to what
      // the sender may have had queued; more is a neighbour pushing data at us.
      if (msg.requestId < 1 || msg.requestId >= this.#nextRequestId)
        return this.destroy('peer-protocol-violation', `data for request ${msg.requestId}, never made`);
      this.#lateAllowance -= msg.bytes.byteLength;
      if (this.#lateAllowance < 0) return this.destroy('peer-over-budget', 'data nobody asked for');
      return;
    }
    const now = this.clock.now();
    if (d.buffer === undefined) {
      if (d.totalBytes !== undefined && msg.totalBytes !== d.totalBytes)
        return this.#badData(d, `announced ${msg.totalBytes} bytes, attestation says ${d.totalBytes}`);
      if (msg.totalBytes > MAX_SEGMENT_BYTES) return this.#badData(d, 'segment too large');
      d.totalBytes = msg.totalBytes;
      d.buffer = new Uint8Array(msg.totalBytes);
      d.firstByteAt = now;
      this.firstByteMs.add(now - d.startedAt);
    }
    if (msg.totalBytes !== d.totalBytes || msg.offset !== d.received)
      return this.#badData(d, 'chunk out of order or inconsistent');
    d.buffer.set(msg.bytes, msg.offset);
    d.received += msg.bytes.byteLength;
    d.lastProgressAt = now;
    this.bytesReceived += msg.bytes.byteLength;
    this.onProgress?.(d, d.received === msg.bytes.byteLength);
    if (d.received === d.totalBytes) {
      this.downloads.delete(d.requestId);
      const elapsedS = Math.max(0.001, (now - (d.firstByteAt ?? d.startedAt)) / 1000);
      if (d.received > this.#minSampleBytes) this.throughput.add(d.received / elapsedS);
      this.standing.succeed();
      this.#relayFailures = 0;
      d.resolve(d.buffer);
    }
  }

  #badData(d: Download, why: string): void {
    this.downloads.delete(d.requestId);
    d.reject(new DownloadAbort(why, 'bad-data'));
    this.destroy('peer-protocol-violation', why);
  }

  #onClosed(reason: string, code: PeerErrorCode | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.clock.clearTimeout(this.#helloTimer);
    for (const d of this.downloads.values()) d.reject(new DownloadAbort(`link closed: ${reason}`, 'closed'));
    this.downloads.clear();
    this.emit('close', { reason, code });
  }
}
