/**
 * Segments on their way in: fetched from the origin (abortable) or downloaded from a neighbour, then
 * verified against the channel's signed attestation and stored, whichever way the bytes came. Bytes
 * whose attestation cannot be had yet are held (unverified.ts) and checked once it is known; bytes that
 * fail the check are dropped, a neighbour that sent them is cut off, and the segment is fetched again.
 * It performs what the scheduler decides (start HTTP, request from a neighbour, switch to HTTP) and
 * decides nothing itself; the engine is told what was delivered, rejected or failed.
 */
import { segmentKey, type Attestation } from '../../protocol/index.ts';
import type { AttestationCache } from './attestations.ts';
import { EngineError, type EngineEvents, type SegmentSourceKind } from './engine-options.ts';
import { Ewma } from './estimators.ts';
import { DownloadAbort, type Download, type Neighbour } from './neighbour.ts';
import type { TransferView } from './scheduler.ts';
import type { SegmentStore } from './segment-store.ts';
import type { Clock, HttpFetcher, Integrity } from './seams.ts';
import { UnverifiedHold, type UnverifiedHoldOptions } from './unverified.ts';

/** A segment being fetched: from the origin (abortable), or from a neighbour (a download). */
export type Transfer = { rendition: string; mediaSequence: number; startedAt: number } & (
  { via: 'http'; abort: AbortController } | { via: 'p2p'; neighbour: Neighbour; download: Download }
);

/** A segment verified and stored. */
export interface Delivery {
  rendition: string;
  mediaSequence: number;
  via: SegmentSourceKind;
  bytes: Uint8Array;
  attestation: Attestation;
  /** When its transfer started (engine clock ms). */
  startedAt: number;
  /** The neighbour it came from (P2P). */
  from?: string;
}

type Rejection = Parameters<EngineEvents['segment-rejected']>[0];

export interface TransfersDeps {
  clock: Clock;
  http: HttpFetcher;
  store: SegmentStore;
  attestations: AttestationCache;
  /** Checks bytes against their record (WebCrypto's SHA-256 in the product). */
  integrity: Integrity;
  channel: string;
  hold: UnverifiedHoldOptions;
  /** Where a segment is fetched from over HTTP. */
  segmentUrl(rendition: string, mediaSequence: number): string;
  delivered(d: Delivery): void;
  /**
   * A fetch of the segment from the origin began: neighbours are told, and may ask us for it already.
   * (From a neighbour, they are told once its first bytes arrived: bytes flowing mean the relay's
   * own supply is real, so relays never wait on each other in a loop.)
   */
  started(rendition: string, mediaSequence: number): void;
  rejected(info: Rejection): void;
  /** The origin failed to give a segment (it is retried by the next scheduling round). */
  failed(message: string): void;
  /** Something changed that may change a decision: schedule a round after `delayMs`. */
  wake(delayMs: number): void;
  /** Segments smaller than this tell little about throughput (time to first byte dominates). */
  minThroughputSampleBytes: number;
  /** HTTP throughput until measured (bytes/s). */
  priorHttpBps: number;
}

const HTTP_RETRY_MS = 300;
const BAD_HTTP_RETRY_MS = 500;

export class Transfers {
  /** Segment download throughput over HTTP (bytes/s) and its time to first byte (ms). */
  readonly httpThroughput: Ewma;
  readonly httpFirstByteMs = new Ewma(0.3, 100);
  readonly #deps: TransfersDeps;
  readonly #inFlight = new Map<string, Transfer>();
  /** Segments whose bytes are being checked against their attestation. */
  readonly #checking = new Set<string>();
  readonly #unverified: UnverifiedHold<Transfer>;
  #destroyed = false;

  constructor(deps: TransfersDeps) {
    this.#deps = deps;
    this.httpThroughput = new Ewma(0.3, deps.priorHttpBps);
    this.#unverified = new UnverifiedHold(deps.clock, deps.hold, {
      retry: (key, held) => void this.#retryAttestation(key, held),
      bytesDropped: (_key, held) =>
        deps.rejected({
          rendition: held.rendition,
          mediaSequence: held.mediaSequence,
          reason: 'attestation-unavailable',
          ...(held.via === 'p2p' && { from: held.neighbour.id }),
        }),
      released: () => deps.wake(0),
    });
  }

  #keyOf(rendition: string, mediaSequence: number): string {
    return segmentKey({ channel: this.#deps.channel, rendition, mediaSequence });
  }

  /** Whether the segment is being fetched. */
  has(rendition: string, mediaSequence: number): boolean {
    return this.#inFlight.has(this.#keyOf(rendition, mediaSequence));
  }

  /** Whether the segment's bytes wait for their attestation (fetching them again is pointless). */
  unverified(rendition: string, mediaSequence: number): boolean {
    return this.#unverified.has(this.#keyOf(rendition, mediaSequence));
  }

  /**
   * Where a relay of the segment takes its bytes while they arrive: the download from a neighbour
   * (bytes so far, not verified), 'pending' while they come another way (the origin, or waiting for
   * their attestation), undefined when the segment is not on its way.
   */
  feed(rendition: string, mediaSequence: number): Download | 'pending' | undefined {
    const key = this.#keyOf(rendition, mediaSequence);
    const t = this.#inFlight.get(key);
    if (t) return t.via === 'p2p' ? t.download : 'pending';
    return this.#unverified.has(key) || this.#checking.has(key) ? 'pending' : undefined;
  }

  /** What the scheduler sees of a transfer. */
  view(rendition: string, mediaSequence: number): TransferView | undefined {
    const t = this.#inFlight.get(this.#keyOf(rendition, mediaSequence));
    if (!t) return undefined;
    if (t.via === 'http') return { via: 'http' };
    return {
      via: 'p2p',
      neighbourId: t.neighbour.id,
      neighbourThroughputBps: t.neighbour.throughput.value,
      inFlight: t.neighbour.downloads.get(t.download.requestId) === t.download,
      download: t.download,
    };
  }

  /** Expected time (ms) to fetch `bytes` from the origin, from what HTTP has measured so far. */
  httpEstimateMs(bytes: number): number {
    return this.httpFirstByteMs.value + (bytes / Math.max(1, this.httpThroughput.value)) * 1000;
  }

  /** Bytes fetched by someone else (the player) from the origin: verified and stored as HTTP bytes. */
  adopt(rendition: string, mediaSequence: number, bytes: Uint8Array): void {
    if (
      this.#destroyed ||
      this.#deps.store.has(rendition, mediaSequence) ||
      this.has(rendition, mediaSequence)
    )
      return;
    const adopted: Transfer = {
      rendition,
      mediaSequence,
      via: 'http',
      startedAt: this.#deps.clock.now(),
      abort: new AbortController(),
    };
    this.#inFlight.set(this.#keyOf(rendition, mediaSequence), adopted);
    void this.#onBytes(adopted, bytes);
  }

  /** Requests the segment from neighbour `n`, to arrive by `deadlineAt`. */
  startP2p(n: Neighbour, rendition: string, seq: number, deadlineAt: number): void {
    if (this.#destroyed) return;
    const key = this.#keyOf(rendition, seq);
    const att = this.#deps.attestations.known(rendition, seq);
    const download = n.request(rendition, seq, deadlineAt - this.#deps.clock.now(), att?.byteLength);
    const transfer: Transfer = {
      rendition,
      mediaSequence: seq,
      via: 'p2p',
      startedAt: this.#deps.clock.now(),
      neighbour: n,
      download,
    };
    this.#inFlight.set(key, transfer);
    download.promise.then(
      (bytes) => void this.#onBytes(transfer, bytes),
      (err: Error) => {
        if (this.#inFlight.get(key) !== transfer) return;
        this.#inFlight.delete(key);
        if (err instanceof DownloadAbort && err.reason === 'bad-data')
          this.#deps.rejected({
            rendition,
            mediaSequence: seq,
            reason: 'peer-protocol-violation',
            from: n.id,
          });
        if (!(err instanceof DownloadAbort) || err.reason !== 'cancelled') this.#deps.wake(0);
      },
    );
  }

  /** Fetches the segment from the origin (`announce`: tell neighbours it is on its way). */
  startHttp(rendition: string, seq: number, announce = true): void {
    if (this.#destroyed) return;
    const key = this.#keyOf(rendition, seq);
    const abort = new AbortController();
    const request: Transfer = {
      rendition,
      mediaSequence: seq,
      via: 'http',
      startedAt: this.#deps.clock.now(),
      abort,
    };
    this.#inFlight.set(key, request);
    if (announce) this.#deps.started(rendition, seq);
    let firstByteAt: number | undefined;
    this.#deps.http
      .get(this.#deps.segmentUrl(rendition, seq), {
        signal: abort.signal,
        onProgress: () => (firstByteAt ??= this.#deps.clock.now()),
      })
      .then((res) => {
        if (res.status !== 200)
          throw new EngineError('origin-unavailable', `segment ${rendition}/${seq}: HTTP ${res.status}`);
        const now = this.#deps.clock.now();
        if (firstByteAt !== undefined) this.httpFirstByteMs.add(firstByteAt - request.startedAt);
        if (res.bytes.byteLength > this.#deps.minThroughputSampleBytes)
          this.httpThroughput.add(
            res.bytes.byteLength / Math.max(0.001, (now - (firstByteAt ?? request.startedAt)) / 1000),
          );
        return this.#onBytes(request, res.bytes);
      })
      .catch((err: Error) => {
        if (this.#inFlight.get(key) === request) this.#inFlight.delete(key);
        if (this.#destroyed || abort.signal.aborted) return; // dropped on purpose
        this.#deps.failed(err.message);
        // Retry soon; a demand past its deadline is still wanted (the player is stalled on it).
        this.#deps.wake(HTTP_RETRY_MS);
      });
  }

  /**
   * Gives up a neighbour's transfer for HTTP (it is late or silent). Returns the neighbour it was
   * coming from, or undefined when the segment was not coming from a neighbour.
   */
  switchToHttp(rendition: string, seq: number, why: string): Neighbour | undefined {
    const key = this.#keyOf(rendition, seq);
    const t = this.#inFlight.get(key);
    if (t?.via !== 'p2p') return undefined;
    t.neighbour.cancel(t.download, why);
    this.#inFlight.delete(key);
    this.startHttp(rendition, seq, false);
    return t.neighbour;
  }

  /** Stops fetching the segment (nobody wants it any more). */
  cancel(rendition: string, seq: number, why: string): void {
    const key = this.#keyOf(rendition, seq);
    const t = this.#inFlight.get(key);
    if (!t) return;
    this.#inFlight.delete(key);
    if (t.via === 'p2p') t.neighbour.cancel(t.download, why);
    else t.abort.abort();
  }

  /** A record became known: bytes waiting for it are checked now. */
  attestationKnown(att: Attestation): void {
    const key = segmentKey(att);
    if (this.#unverified.has(key)) void this.#retryAttestation(key);
  }

  async #onBytes(got: Transfer, bytes: Uint8Array): Promise<void> {
    const { rendition, mediaSequence: seq } = got;
    const key = this.#keyOf(rendition, seq);
    const att = await this.#deps.attestations.get(rendition, seq);
    if (this.#destroyed || this.#inFlight.get(key) !== got) return;
    this.#inFlight.delete(key);
    if (!att) {
      // Cannot be checked yet (origin down, no push yet): hold the bytes and fetch the record again
      // with backoff; the sender is not blamed, and the segment is not downloaded again meanwhile.
      if (!this.#deps.store.has(rendition, seq)) this.#unverified.hold(key, got, bytes);
      return;
    }
    await this.#accept(got, bytes, att);
  }

  /** Fetches the attestation of held bytes again; checks and delivers them once it is known. */
  async #retryAttestation(key: string, meta?: Transfer): Promise<void> {
    const t = meta ?? this.#unverified.peek(key);
    if (!t) return;
    const att = await this.#deps.attestations.get(t.rendition, t.mediaSequence);
    if (this.#destroyed || !att) return;
    const held = this.#unverified.take(key);
    if (!held || this.#deps.store.has(t.rendition, t.mediaSequence)) return;
    // Bytes let go meanwhile: fetch the segment again, now that it can be checked.
    if (!held.bytes) return this.#deps.wake(0);
    await this.#accept(held.meta, held.bytes, att);
  }

  /** Checks bytes against their attestation; stores and delivers them, or rejects them. */
  async #accept(got: Transfer, bytes: Uint8Array, att: Attestation): Promise<void> {
    const { rendition, mediaSequence: seq } = got;
    const from = got.via === 'p2p' ? got.neighbour.id : undefined;
    const key = this.#keyOf(rendition, seq);
    this.#checking.add(key);
    let check: Awaited<ReturnType<Integrity['checkBytes']>>;
    try {
      check = await this.#deps.integrity.checkBytes(att, bytes);
    } finally {
      // Stored or dropped below, in the same turn: a relay never finds the segment nowhere between.
      this.#checking.delete(key);
    }
    if (this.#destroyed) return;
    if (!check.ok) {
      const reason = check.code;
      this.#deps.rejected({ rendition, mediaSequence: seq, reason, ...(from && { from }) });
      // Drop the bytes; a neighbour that sent bad data is cut off; fetch again from the origin.
      if (got.via === 'p2p') got.neighbour.destroy('peer-sent-bad-segment', `${rendition}/${seq}: ${reason}`);
      if (this.has(rendition, seq)) return;
      if (got.via === 'p2p') this.startHttp(rendition, seq);
      else this.#deps.wake(BAD_HTTP_RETRY_MS);
      return;
    }
    this.#deps.store.put(rendition, seq, bytes, att);
    this.#deps.delivered({
      rendition,
      mediaSequence: seq,
      via: got.via,
      bytes,
      attestation: att,
      startedAt: got.startedAt,
      ...(from && { from }),
    });
  }

  /** Aborts every fetch and download, lets held bytes go. Idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#unverified.destroy();
    for (const t of this.#inFlight.values()) {
      if (t.via === 'http') t.abort.abort();
      else t.neighbour.cancel(t.download, 'destroyed');
    }
    this.#inFlight.clear();
  }
}
