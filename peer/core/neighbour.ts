/**
 * One neighbour: the wire protocol over a PeerLink (handshake, announcements, requests, chunked data),
 * what the neighbour holds, and how fast it delivers. Malformed input closes the link with a stable code.
 */
import {
  decodeMessage,
  encodeMessage,
  HaveSet,
  MAX_SEGMENT_BYTES,
  TypedEmitter,
  WIRE_VERSION,
  WireError,
  type AbsentReason,
  type PeerErrorCode,
  type WireMessage,
} from '../../protocol/index.ts';
import { Ewma } from './estimators.ts';
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
  /** Settles with the segment's (not yet verified) bytes, or a DownloadAbort. */
  promise: Promise<Uint8Array>;
  resolve: (bytes: Uint8Array) => void;
  reject: (err: Error) => void;
}

export type NeighbourEvents = {
  /** Handshake done: requests can flow. */
  open: () => void;
  have: (info: { rendition: string; ranges: [number, number][]; reset: boolean }) => void;
  /** The neighbour asks us for a segment. */
  request: (req: { requestId: number; rendition: string; mediaSequence: number; deadlineMs: number }) => void;
  cancel: (requestId: number) => void;
  close: (info: { reason: string; code: PeerErrorCode | undefined }) => void;
};

export class DownloadAbort extends Error {
  constructor(
    message: string,
    readonly reason: 'absent' | 'closed' | 'cancelled' | 'bad-data',
  ) {
    super(message);
  }
}

const HELLO_TIMEOUT_MS = 10_000;
const BUSY_BACKOFF_MS = 1000;

export class Neighbour extends TypedEmitter<NeighbourEvents> {
  readonly id: string;
  readonly link: PeerLink;
  /** What the neighbour holds, per rendition. */
  readonly holds = new Map<string, HaveSet>();
  /** Delivery rate from this neighbour (bytes/s), and time to first byte (ms). */
  // Prior before the first transfer: 1.5 MB/s (a modest residential uplink), so new neighbours get tried.
  readonly throughput = new Ewma(0.4, 1_500_000);
  readonly firstByteMs = new Ewma(0.4, 150);
  readonly downloads = new Map<number, Download>();
  readonly connectedAt: number;
  bytesReceived = 0;
  bytesSent = 0;
  /** Answered `busy`: not asked again before this time (clock ms). */
  busyUntil = 0;
  #open = false;
  #closed = false;
  #nextRequestId = 1;
  #helloTimer: TimerHandle | undefined;

  constructor(
    link: PeerLink,
    private readonly clock: Clock,
    private readonly local: { peerId: string; channel: string },
  ) {
    super();
    this.id = link.remoteId;
    this.link = link;
    this.connectedAt = clock.now();
    link.on('connect', () => {
      this.#send({ type: 'hello', version: WIRE_VERSION, peerId: local.peerId, channel: local.channel });
      // The remote's hello may arrive before our own 'connect' event.
      if (!this.#open)
        this.#helloTimer = clock.setTimeout(() => this.close('peer-timeout', 'no hello'), HELLO_TIMEOUT_MS);
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

  announce(rendition: string, ranges: [number, number][], reset: boolean): void {
    if (this.open && (reset || ranges.length > 0)) this.#send({ type: 'have', rendition, reset, ranges });
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
    d.reject(new DownloadAbort(why, 'cancelled'));
  }

  sendData(requestId: number, offset: number, totalBytes: number, bytes: Uint8Array): void {
    this.bytesSent += bytes.byteLength;
    this.#send({ type: 'data', requestId, offset, totalBytes, bytes });
  }

  sendAbsent(requestId: number, reason: AbsentReason): void {
    this.#send({ type: 'absent', requestId, reason });
  }

  /** Closes the link; with an error code, tells the neighbour why first. */
  close(code: PeerErrorCode | 'bye', reason: string): void {
    if (this.#closed) return;
    if (this.link.connected) this.#send({ type: 'bye', code });
    this.#onClosed(reason, code === 'bye' ? undefined : code);
    this.link.destroy(reason);
  }

  #send(msg: WireMessage): void {
    if (this.#closed || !this.link.connected) return;
    try {
      this.link.send(encodeMessage(msg));
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
      return this.close(code, `malformed message: ${(err as Error).message}`);
    }
    if (!this.#open && msg.type !== 'hello')
      return this.close('peer-protocol-violation', `${msg.type} before hello`);
    switch (msg.type) {
      case 'hello':
        if (this.#open) return this.close('peer-protocol-violation', 'second hello');
        if (msg.version !== WIRE_VERSION)
          return this.close('peer-version-mismatch', `version ${msg.version}`);
        if (msg.channel !== this.local.channel) return this.close('peer-wrong-channel', msg.channel);
        if (msg.peerId !== this.id) return this.close('peer-protocol-violation', 'hello from another id');
        this.clock.clearTimeout(this.#helloTimer);
        this.#open = true;
        this.emit('open');
        return;
      case 'have': {
        let set = this.holds.get(msg.rendition);
        if (msg.reset || !set) this.holds.set(msg.rendition, (set = HaveSet.fromRanges(msg.ranges)));
        else for (const [a, b] of msg.ranges) set.addRange(a, b);
        if (set.ranges().length > 4096)
          return this.close('peer-protocol-violation', 'announcement too fragmented');
        this.emit('have', { rendition: msg.rendition, ranges: msg.ranges, reset: msg.reset });
        return;
      }
      case 'lost':
        for (const [a, b] of msg.ranges) this.holds.get(msg.rendition)?.remove(a, b);
        return;
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
        // It does not have it after all: forget the announcement; busy: leave it alone for a while.
        if (msg.reason !== 'busy') this.holds.get(d.rendition)?.remove(d.mediaSequence, d.mediaSequence);
        else this.busyUntil = this.clock.now() + BUSY_BACKOFF_MS;
        d.reject(new DownloadAbort(`neighbour answered ${msg.reason}`, 'absent'));
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

  #onChunk(msg: Extract<WireMessage, { type: 'data' }>): void {
    const d = this.downloads.get(msg.requestId);
    if (!d) return; // cancelled: late chunks are expected
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
    if (d.received === d.totalBytes) {
      this.downloads.delete(d.requestId);
      const elapsedS = Math.max(0.001, (now - (d.firstByteAt ?? d.startedAt)) / 1000);
      if (d.received > 32 * 1024) this.throughput.add(d.received / elapsedS);
      d.resolve(d.buffer);
    }
  }

  #badData(d: Download, why: string): void {
    this.downloads.delete(d.requestId);
    d.reject(new DownloadAbort(why, 'bad-data'));
    this.close('peer-protocol-violation', why);
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
