/**
 * Upload management: neighbours' requests served by urgency (earliest deadline first), a few upload
 * slots per neighbour and overall, an optional upload cap (token bucket), backpressure on the data
 * channel's `bufferedAmount`, and a measurement of the upload rate achieved while busy.
 *
 * Segments still on their way in are relayed (cut-through): a request for a segment we are receiving
 * from a neighbour is answered with its bytes as they arrive, so that a hop costs a chunk's time, not a
 * whole segment's. Those bytes are not verified yet: the last chunk goes only from the verified copy,
 * so the requester never completes a segment we did not verify, and if the verified bytes differ from
 * what was relayed (the supplier lied), the relay ends with `busy` and the requester goes elsewhere.
 *
 * Each neighbour has a budget (like a BitTorrent peer that gets choked): a few requests outstanding
 * with us (more are answered `busy`), upload bounded to a small multiple of the stream's top bitrate
 * after a burst of a few segments (a neighbour catching up still gets its first segments at once), and
 * a request queued longer than `maxQueueWaitMs` is answered `busy` so the requester goes elsewhere
 * rather than wait. Requests for renditions outside the ladder, asking on after `busy` answers, or
 * asking again and again for segments already sent in full close that link (`peer-over-budget`,
 * `peer-protocol-violation`).
 */
import { MAX_CHUNK_BYTES } from '../../protocol/index.ts';
import { DebtBucket, LeakyCounter, RecentKeys, UNKNOWN_LADDER, type StreamLadder } from './budget.ts';
import { RateMeter } from './estimators.ts';
import type { Neighbour } from './neighbour.ts';
import type { Clock, TimerHandle } from './seams.ts';

export interface UploadOptions {
  /** Upload cap in kbit/s (0 = no cap). */
  capKbps: number;
  /** Concurrent uploads overall, and per neighbour. */
  slots: number;
  slotsPerNeighbour: number;
  /** Requests waiting at most; more are answered `busy`. */
  maxQueued: number;
  /** Stop writing while the channel holds this much unsent data. */
  highWaterBytes: number;
  chunkBytes: number;
  /** Requests one neighbour may have waiting beyond its `slotsPerNeighbour` active ones (more: `busy`). */
  queuedPerNeighbour: number;
  /** A request not started after this long is answered `busy` (the requester goes elsewhere in time). */
  maxQueueWaitMs: number;
  /** Upload to one neighbour: at most this multiple of the stream's top bitrate… */
  neighbourRateFactor: number;
  /** …after a burst of this many segments at the top bitrate. */
  neighbourBurstSegments: number;
  /**
   * Requests a neighbour may send beyond its budget (each answered `busy`; the count leaks 2 per
   * second, about what an honest peer backing off after `busy` sends); one more closes the link.
   */
  maxOverBudgetRequests: number;
  /** Times a neighbour may ask again for a segment we already sent it in full (one forgiven a minute). */
  maxRepeatedSends: number;
  /**
   * Fair share: while we upload more than this many copies of the stream (top bitrate, over the last
   * 5 s), a request that is not urgent (due in more than `urgentMs`) is answered `busy`, so the
   * requester takes the segment from another holder (one we fed meanwhile): the load spreads down a
   * tree instead of one peer feeding everyone. Urgent requests are served. 0: no limit. Not applied
   * while the tracker plans who feeds whom ({@link UploadManager.planned}).
   */
  fairShareCopies: number;
  urgentMs: number;
}

export const DEFAULT_UPLOAD: UploadOptions = {
  capKbps: 0,
  slots: 6,
  slotsPerNeighbour: 2,
  maxQueued: 64,
  highWaterBytes: 1024 * 1024,
  chunkBytes: 16 * 1024,
  queuedPerNeighbour: 4,
  maxQueueWaitMs: 500,
  neighbourRateFactor: 3,
  neighbourBurstSegments: 4,
  maxOverBudgetRequests: 16,
  maxRepeatedSends: 2,
  fairShareCopies: 1,
  urgentMs: 2500,
};

const OVER_BUDGET_LEAK_PER_S = 2;
const REPEATS_LEAK_PER_S = 1 / 60;
/** Segments remembered per neighbour as sent in full. */
const SENT_MEMORY = 256;

/** A download on its way in: its bytes so far, in order (neighbour.ts's `Download`). */
export interface Feed {
  readonly buffer: Uint8Array | undefined;
  readonly received: number;
  readonly totalBytes: number | undefined;
}

export interface SegmentSource {
  /** Whether a verified segment is held (cheap; no pin). */
  has?(rendition: string, seq: number): boolean;
  /** Verified bytes of a segment we hold (and pin it while it uploads), or undefined. */
  acquire(rendition: string, seq: number): Uint8Array | undefined;
  release(rendition: string, seq: number): void;
  /**
   * A segment on its way in: the download its bytes come from, 'pending' when they come another way
   * (the origin) or are being checked, undefined when it is not on its way (see transfers.ts `feed`).
   */
  feed?(rendition: string, seq: number): Feed | 'pending' | undefined;
}

/** One neighbour's account with us. */
interface Account {
  /** Jobs of this neighbour queued or active. */
  outstanding: number;
  /** Upload allowance in bytes (charged a whole segment when its upload starts). */
  bucket: DebtBucket;
  overBudget: LeakyCounter;
  repeats: LeakyCounter;
  sent: RecentKeys;
}

interface Job {
  neighbour: Neighbour;
  requestId: number;
  rendition: string;
  mediaSequence: number;
  deadlineAt: number;
  queuedAt: number;
  /** Verified bytes (pinned in the store while the job lasts). */
  bytes?: Uint8Array;
  /** A relay's download: where the bytes sent so far came from, before `bytes` was had. */
  feed?: Feed;
  /** The neighbour's allowance was charged the segment's size. */
  charged: boolean;
  offset: number;
}

export class UploadManager {
  readonly opts: UploadOptions;
  readonly #queue: Job[] = [];
  readonly #active = new Set<Job>();
  readonly #meter = new RateMeter(5000);
  readonly #accounts = new Map<Neighbour, Account>();
  #tokens: number;
  #lastRefill: number;
  #timer: TimerHandle | undefined;
  #busySince: number | undefined;
  /** Active jobs relaying a segment still on its way in. */
  #relays = 0;
  #bestRateBps = 0;
  uploadedBytes = 0;
  /**
   * The tracker plans the overlay (it sends ranked suppliers): its plan spreads the load by capacity,
   * so the fair-share limit is off (it would turn away the children a high-capacity peer was given).
   */
  planned = false;
  #destroyed = false;
  /** Every neighbour's allowance (rate and burst, bytes), read live: made once, shared by the accounts. */
  readonly #accountRate = (): number => this.opts.neighbourRateFactor * this.#streamBytesPerS();
  readonly #accountBurst = (): number =>
    this.opts.neighbourBurstSegments * this.#streamBytesPerS() * this.ladder.segmentDurationS();

  constructor(
    private readonly clock: Clock,
    private readonly source: SegmentSource,
    opts: Partial<UploadOptions> = {},
    private readonly ladder: StreamLadder = UNKNOWN_LADDER,
  ) {
    this.opts = { ...DEFAULT_UPLOAD, ...opts };
    if (this.opts.chunkBytes > MAX_CHUNK_BYTES)
      throw new RangeError(`chunkBytes must be ≤ ${MAX_CHUNK_BYTES}`);
    if (this.opts.slotsPerNeighbour > this.opts.slots)
      throw new RangeError('slotsPerNeighbour must be ≤ slots');
    for (const k of [
      'queuedPerNeighbour',
      'maxQueueWaitMs',
      'neighbourRateFactor',
      'neighbourBurstSegments',
      'maxOverBudgetRequests',
      'maxRepeatedSends',
    ] as const)
      if (!(this.opts[k] >= 0)) throw new RangeError(`upload.${k} must be ≥ 0`);
    if (this.opts.neighbourRateFactor <= 0) throw new RangeError('upload.neighbourRateFactor must be > 0');
    this.#tokens = this.#burst();
    this.#lastRefill = clock.now();
  }

  #burst(): number {
    return this.opts.capKbps > 0
      ? Math.max(this.opts.chunkBytes * 4, (this.opts.capKbps * 1000) / 8 / 4)
      : Infinity;
  }

  #streamBytesPerS(): number {
    return this.ladder.topBitrateBps() / 8;
  }

  /** A neighbour's upload allowance: `neighbourRateFactor` × the top bitrate, burst of a few segments. */
  #account(n: Neighbour): Account {
    let a = this.#accounts.get(n);
    if (!a) {
      a = {
        outstanding: 0,
        bucket: new DebtBucket(this.clock.now(), this.#accountRate, this.#accountBurst),
        overBudget: new LeakyCounter(OVER_BUDGET_LEAK_PER_S),
        repeats: new LeakyCounter(REPEATS_LEAK_PER_S),
        sent: new RecentKeys(SENT_MEMORY),
      };
      this.#accounts.set(n, a);
    }
    return a;
  }

  /** A neighbour asked for a segment. */
  enqueue(
    neighbour: Neighbour,
    req: { requestId: number; rendition: string; mediaSequence: number; deadlineMs: number },
  ): void {
    if (this.#destroyed || neighbour.closed) return;
    const { requestId, rendition, mediaSequence } = req;
    // Only segments of the channel's ladder can be wanted.
    if (this.ladder.has(rendition) === false)
      return neighbour.destroy('peer-protocol-violation', `request for ${rendition}, not in the ladder`);
    const now = this.clock.now();
    const a = this.#account(neighbour);
    // Over its own budget (too many outstanding, or its upload allowance spent for a while): `busy`,
    // and a neighbour that keeps asking regardless is closed.
    const tooMany = a.outstanding >= this.opts.slotsPerNeighbour + this.opts.queuedPerNeighbour;
    const spent = a.bucket.msUntil(now, 0) > this.opts.maxQueueWaitMs;
    if (tooMany || spent) {
      if (a.overBudget.add(now) > this.opts.maxOverBudgetRequests)
        return neighbour.destroy(
          'peer-over-budget',
          tooMany ? 'too many requests' : 'upload allowance spent',
        );
      return neighbour.sendAbsent(requestId, 'busy');
    }
    // What we neither hold nor receive costs nothing but an answer.
    if (
      this.source.has &&
      !this.source.has(rendition, mediaSequence) &&
      !this.source.feed?.(rendition, mediaSequence)
    )
      return neighbour.sendAbsent(requestId, 'not-held');
    // Asking again for what it got in full: tolerated a couple of times (a retry after a cancel).
    if (a.sent.has(`${rendition}/${mediaSequence}`) && a.repeats.add(now) > this.opts.maxRepeatedSends)
      return neighbour.destroy(
        'peer-over-budget',
        `asks again for ${rendition}/${mediaSequence}, sent in full`,
      );
    if (this.#queue.length >= this.opts.maxQueued) return neighbour.sendAbsent(requestId, 'busy');
    if (this.#overFairShare(now) && req.deadlineMs > this.opts.urgentMs)
      return neighbour.sendAbsent(requestId, 'busy');
    a.outstanding++;
    this.#queue.push({
      neighbour,
      ...req,
      deadlineAt: now + req.deadlineMs,
      queuedAt: now,
      offset: 0,
      charged: false,
    });
    this.#queue.sort((a, b) => a.deadlineAt - b.deadlineAt);
    this.#pump();
  }

  cancel(neighbour: Neighbour, requestId: number): void {
    const i = this.#queue.findIndex((j) => j.neighbour === neighbour && j.requestId === requestId);
    if (i >= 0) this.#dequeue(i);
    for (const j of this.#active) if (j.neighbour === neighbour && j.requestId === requestId) this.#finish(j);
  }

  /** Drops everything of a neighbour that closed. */
  forget(neighbour: Neighbour): void {
    for (let i = this.#queue.length - 1; i >= 0; i--)
      if (this.#queue[i]!.neighbour === neighbour) this.#queue.splice(i, 1);
    for (const j of this.#active) if (j.neighbour === neighbour) this.#finish(j);
    this.#accounts.delete(neighbour);
  }

  /** Bytes a neighbour may still get before its allowance is spent (negative: in debt). */
  allowanceBytes(neighbour: Neighbour): number {
    return this.#account(neighbour).bucket.level(this.clock.now());
  }

  /** Uploading more than the fair share (see `fairShareCopies`). */
  #overFairShare(now: number): boolean {
    const { fairShareCopies } = this.opts;
    return (
      !this.planned &&
      fairShareCopies > 0 &&
      this.#meter.rate(now) * 8 > fairShareCopies * this.ladder.topBitrateBps()
    );
  }

  /**
   * Upload capacity estimate (kbit/s): the best rate sustained over a window in which requests were
   * always waiting (so the link or the cap, not demand, was the limit); 0 until measured.
   */
  measuredCapacityKbps(): number {
    const measured = (this.#bestRateBps * 8) / 1000;
    return this.opts.capKbps > 0 && measured > 0 ? Math.min(this.opts.capKbps, measured) : measured;
  }

  currentRateKbps(): number {
    return (this.#meter.rate(this.clock.now()) * 8) / 1000;
  }

  get queued(): number {
    return this.#queue.length;
  }

  get active(): number {
    return this.#active.size;
  }

  /** A channel drained: continue. */
  onDrain(): void {
    this.#pump();
  }

  /** Bytes of a segment on its way in arrived, or it was stored: relays waiting for them continue. */
  onFeed(): void {
    if (this.#relays > 0) this.#pump();
  }

  /** Whether we are sending (or about to send) the segment to anyone. */
  sending(rendition: string, seq: number): boolean {
    const match = (j: Job) => j.mediaSequence === seq && j.rendition === rendition;
    for (const j of this.#active) if (match(j)) return true;
    return this.#queue.some(match);
  }

  #finish(job: Job): void {
    if (!this.#active.delete(job)) return;
    if (job.bytes) this.source.release(job.rendition, job.mediaSequence);
    else this.#relays--;
    const a = this.#accounts.get(job.neighbour);
    if (a) a.outstanding--;
  }

  /** Removes a queued job (not started). */
  #dequeue(i: number): Job {
    const [job] = this.#queue.splice(i, 1);
    const a = this.#accounts.get(job!.neighbour);
    if (a) a.outstanding--;
    return job!;
  }

  #pump(): void {
    if (this.#destroyed) return;
    this.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    const now = this.clock.now();
    /** When a neighbour's allowance lets a waiting job start. */
    let wakeInMs = Infinity;
    // Start jobs while slots are free (most urgent first).
    for (let i = 0; i < this.#queue.length;) {
      const job = this.#queue[i]!;
      const n = job.neighbour;
      if (n.closed) {
        this.#dequeue(i);
        continue;
      }
      // Waited too long: tell the requester now (it goes elsewhere) rather than let it time out.
      if (now - job.queuedAt > this.opts.maxQueueWaitMs) {
        this.#dequeue(i);
        n.sendAbsent(job.requestId, 'busy');
        continue;
      }
      const a = this.#account(n);
      const perNeighbour = [...this.#active].filter((j) => j.neighbour === n).length;
      const waitMs = a.bucket.msUntil(now, 0);
      if (this.#active.size >= this.opts.slots || perNeighbour >= this.opts.slotsPerNeighbour || waitMs > 0) {
        if (waitMs > 0) wakeInMs = Math.min(wakeInMs, waitMs);
        i++;
        continue;
      }
      this.#queue.splice(i, 1);
      const bytes = this.source.acquire(job.rendition, job.mediaSequence);
      if (bytes) {
        // The whole segment is charged when it starts (a cancel does not give it back); a relay's
        // once its size is known, when it sends its first bytes.
        a.bucket.charge(now, bytes.byteLength);
        job.charged = true;
        job.bytes = bytes;
      } else if (!this.source.feed?.(job.rendition, job.mediaSequence)) {
        a.outstanding--;
        n.sendAbsent(job.requestId, 'not-held');
        continue;
      } else this.#relays++;
      this.#active.add(job);
    }
    if (this.#active.size === 0) {
      this.#noteBusy(false);
      if (this.#queue.length > 0)
        this.#timer = this.clock.setTimeout(() => this.#pump(), Math.min(50, Math.max(1, wakeInMs)));
      return;
    }
    // Round-robin one chunk per active job while the cap and the channels allow.
    if (this.opts.capKbps > 0) {
      this.#tokens = Math.min(
        this.#burst(),
        this.#tokens + ((now - this.#lastRefill) / 1000) * ((this.opts.capKbps * 1000) / 8),
      );
      this.#lastRefill = now;
    }
    let progressed = true;
    let blockedByCap = false;
    // Some upload had bytes to send (not only relays waiting for theirs): a window of work.
    let hadBytes = false;
    // Each round gives one chunk to every active upload, most urgent first: under a cap the most
    // urgent gets the tokens; without one, the channels' backpressure shares the bandwidth.
    const byUrgency = [...this.#active].sort((a, b) => a.deadlineAt - b.deadlineAt);
    while (progressed) {
      progressed = false;
      for (const job of byUrgency) {
        if (!this.#active.has(job)) continue;
        const n = job.neighbour;
        if (n.closed) {
          this.#finish(job);
          continue;
        }
        if (n.link.bufferedAmount >= this.opts.highWaterBytes) {
          hadBytes ||= job.bytes !== undefined || job.offset > 0;
          continue;
        }
        const got = this.#sendable(job);
        if (got === undefined) continue;
        const { bytes, end, total } = got;
        hadBytes = true;
        const size = Math.min(this.opts.chunkBytes, end - job.offset);
        // A relay sends whole chunks while its bytes arrive (the rest once verified).
        if (size <= 0 || (size < this.opts.chunkBytes && end < total)) continue;
        if (this.#tokens < size) {
          blockedByCap = true;
          continue;
        }
        this.#tokens -= size;
        if (!job.charged) {
          this.#accounts.get(n)?.bucket.charge(now, total);
          job.charged = true;
        }
        n.sendData(job.requestId, job.offset, total, bytes.subarray(job.offset, job.offset + size));
        job.offset += size;
        this.uploadedBytes += size;
        this.#meter.add(now, size);
        progressed = true;
        if (job.offset >= bytes.byteLength) {
          this.#accounts.get(n)?.sent.add(`${job.rendition}/${job.mediaSequence}`);
          this.#finish(job);
        }
      }
    }
    // Busy (a window that says something about capacity) while uploads have bytes to send; relays
    // waiting for their own supplier's bytes do not count.
    this.#noteBusy(hadBytes);
    this.#measure(now);
    if (this.#active.size > 0 || this.#queue.length > 0) {
      // Woken by a drain event, or by the token bucket refilling.
      const waitMs = blockedByCap
        ? Math.max(5, ((this.opts.chunkBytes - this.#tokens) / ((this.opts.capKbps * 1000) / 8)) * 1000)
        : 50;
      this.#timer = this.clock.setTimeout(() => this.#pump(), Math.max(1, Math.min(waitMs, wakeInMs)));
    }
  }

  /**
   * What a job can send now: its verified bytes, or a relay's bytes so far (never the last one before
   * they are verified). Undefined: wait. A relay whose source went away, or whose verified bytes differ
   * from what it sent, ends here with `busy` (the requester goes elsewhere).
   */
  #sendable(job: Job): { bytes: Uint8Array; end: number; total: number } | undefined {
    if (job.bytes) return { bytes: job.bytes, end: job.bytes.byteLength, total: job.bytes.byteLength };
    const { rendition, mediaSequence } = job;
    const verified = this.source.acquire(rendition, mediaSequence);
    if (verified) {
      // What was relayed must be the start of the verified segment, of the size announced with it (the
      // store usually keeps the very buffer the download filled: nothing to compare then).
      const sent = job.feed?.buffer;
      if (
        job.offset > 0 &&
        sent !== verified &&
        (!sent || job.feed!.totalBytes !== verified.byteLength || !sameBytes(sent, verified, job.offset))
      ) {
        this.source.release(rendition, mediaSequence);
        return this.#endRelay(job);
      }
      job.bytes = verified;
      job.feed = undefined;
      this.#relays--;
      return { bytes: verified, end: verified.byteLength, total: verified.byteLength };
    }
    const feed = this.source.feed?.(rendition, mediaSequence);
    if (feed === undefined) return this.#endRelay(job);
    // Bytes sent so far came from one download: another one's are not sent before they are verified.
    if (feed === 'pending' || (job.offset > 0 && feed !== job.feed)) return undefined;
    if (feed.buffer === undefined || feed.totalBytes === undefined) return undefined;
    job.feed = feed;
    return { bytes: feed.buffer, end: Math.min(feed.received, feed.totalBytes - 1), total: feed.totalBytes };
  }

  #endRelay(job: Job): undefined {
    this.#finish(job);
    job.neighbour.sendAbsent(job.requestId, 'busy');
    return undefined;
  }

  #noteBusy(busy: boolean): void {
    if (busy && this.#busySince === undefined) this.#busySince = this.clock.now();
    if (!busy) this.#busySince = undefined;
  }

  #measure(now: number): void {
    // Only a window that was busy throughout says something about capacity.
    if (this.#busySince !== undefined && now - this.#busySince >= this.#meter.windowMs)
      this.#bestRateBps = Math.max(this.#bestRateBps * 0.999, this.#meter.rate(now));
  }

  destroy(): void {
    this.#destroyed = true;
    this.clock.clearTimeout(this.#timer);
    for (const j of [...this.#active]) this.#finish(j);
    this.#queue.length = 0;
    this.#accounts.clear();
  }
}

/** Whether the first `n` bytes of `a` and `b` are equal. */
function sameBytes(a: Uint8Array, b: Uint8Array, n: number): boolean {
  if (a.byteLength < n || b.byteLength < n) return false;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}
