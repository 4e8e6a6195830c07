/**
 * Raw WebRTC data channel performance between two @roamhq/wrtc peers in this process, on loopback
 * only (no ICE server; only 127.0.0.1 candidates are signalled): bulk throughput and the time to move
 * one segment-sized payload over an idle link, with the same backpressure the engine uses.
 */
import type { PeerLink } from '../../../peer/core/seams.ts';
import { loadWrtc } from '../../../peer/node/index.ts';
import { loopbackCandidatesOnly, SimplePeerTransport } from '../../../peer/platform/simple-peer-transport.ts';
import { signalDataSchema, type SignalData } from '../../../protocol/index.ts';
import { quantile } from './stats.ts';

export interface DataChannelBenchOptions {
  /** Bytes moved per throughput run. */
  bytes: number;
  /** Message size (≤ 64 KiB). */
  chunkBytes: number;
  /** The payload timed for `segmentMs`: default 640 000 B (2 s of 2.5 Mbit/s). */
  segmentBytes?: number;
  /** Runs of each measurement (the medians are reported). Default 5. */
  repeats?: number;
  /** The sender waits for `drain` above this many buffered bytes. Default 1 MiB. */
  highWaterBytes?: number;
  /** Gives up after this long (ms). Default 60 s. */
  timeoutMs?: number;
}

export interface DataChannelBenchResult {
  /** Median bulk throughput (Mbit/s, payload bytes only). */
  throughputMbps: number;
  throughputRunsMbps: number[];
  /** Median time to move `segmentBytes` over an idle link (ms, first send → last byte received). */
  segmentMs: number;
  segmentRunsMs: number[];
  /** Time from creating the links to both `connect` events (ms). */
  connectMs: number;
  bytes: number;
  chunkBytes: number;
  segmentBytes: number;
}

export async function measureDataChannel(opts: DataChannelBenchOptions): Promise<DataChannelBenchResult> {
  const segmentBytes = opts.segmentBytes ?? 640_000;
  const repeats = opts.repeats ?? 5;
  const highWaterBytes = opts.highWaterBytes ?? 1024 * 1024;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  if (!(opts.chunkBytes > 0 && opts.chunkBytes <= 64 * 1024))
    throw new RangeError('chunkBytes must be in 1..65536');
  if (!(opts.bytes > 0) || !(segmentBytes > 0) || !(repeats >= 1))
    throw new RangeError('bytes, segmentBytes, repeats must be > 0');

  const transport = new SimplePeerTransport({
    wrtc: await loadWrtc(),
    candidateFilter: loopbackCandidatesOnly,
  });
  const t0 = performance.now();
  const a = transport.createLink({
    localId: 'bench-a',
    remoteId: 'bench-b',
    initiator: true,
    iceServers: [],
  });
  const b = transport.createLink({
    localId: 'bench-b',
    remoteId: 'bench-a',
    initiator: false,
    iceServers: [],
  });
  const deadline = setTimeout(() => {
    a.destroy('bench-timeout');
    b.destroy('bench-timeout');
  }, timeoutMs);
  try {
    // Signaling relay; drops anything that is not a loopback candidate (second line of defence).
    const relay = (to: PeerLink) => (s: SignalData) => {
      const data = signalDataSchema.parse(s);
      if ('type' in data && data.type === 'candidate' && !loopbackCandidatesOnly(data.candidate.candidate))
        return;
      to.signal(data);
    };
    a.on('signal', relay(b));
    b.on('signal', relay(a));
    await Promise.all([next(a, 'connect', timeoutMs), next(b, 'connect', timeoutMs)]);
    const connectMs = performance.now() - t0;
    // Rejects if either link closes before we are done (e.g. the deadline above).
    const failure = new Promise<never>((_, reject) => {
      const onClose = (reason: string): void =>
        reject(new Error(`data channel bench: link closed (${reason})`));
      a.once('close', onClose);
      b.once('close', onClose);
    });
    failure.catch(() => undefined);
    const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, failure]);

    const chunk = new Uint8Array(opts.chunkBytes);
    for (let i = 0; i < chunk.length; i++) chunk[i] = i & 0xff;
    /** Sends `total` bytes a → b; resolves with ms from the first send to the last byte received. */
    const transfer = async (total: number): Promise<number> => {
      let received = 0;
      const done = new Promise<void>((resolve) => {
        const onData = (m: Uint8Array): void => {
          received += m.byteLength;
          if (received >= total) {
            b.off('data', onData);
            resolve();
          }
        };
        b.on('data', onData);
      });
      const start = performance.now();
      for (let sent = 0; sent < total;) {
        if (a.bufferedAmount > highWaterBytes) await next(a, 'drain');
        const n = Math.min(opts.chunkBytes, total - sent);
        a.send(n === chunk.length ? chunk : chunk.subarray(0, n));
        sent += n;
      }
      await guard(done);
      return performance.now() - start;
    };

    await transfer(Math.min(opts.bytes, 4 * 1024 * 1024)); // warm-up (SCTP congestion window)
    const throughputRunsMbps: number[] = [];
    const segmentRunsMs: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const ms = await transfer(opts.bytes);
      throughputRunsMbps.push((opts.bytes * 8) / 1000 / ms);
      await idle();
      segmentRunsMs.push(await transfer(segmentBytes));
      await idle();
    }
    return {
      throughputMbps: quantile(throughputRunsMbps, 0.5),
      throughputRunsMbps,
      segmentMs: quantile(segmentRunsMs, 0.5),
      segmentRunsMs,
      connectMs,
      bytes: opts.bytes,
      chunkBytes: opts.chunkBytes,
      segmentBytes,
    };
  } finally {
    clearTimeout(deadline);
    const closed = Promise.all([next(a, 'close', 5_000), next(b, 'close', 5_000)]).catch(() => undefined);
    a.destroy('bench-done');
    b.destroy('bench-done');
    await closed;
  }
}

/** Lets the channel empty between runs. */
const idle = (): Promise<void> => new Promise((r) => setTimeout(r, 50));

/** The next `event` of a link; rejects if the link closes first (unless waiting for `close`) or on timeout. */
function next(link: PeerLink, event: 'connect' | 'drain' | 'close', timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      link.off(event, onEvent);
      link.off('close', onClose);
    };
    const onEvent = (): void => {
      cleanup();
      resolve();
    };
    const onClose = (reason: string): void => {
      cleanup();
      reject(new Error(`data channel bench: link closed (${reason}) while waiting for ${event}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`data channel bench: timed out waiting for ${event}`));
    }, timeoutMs);
    link.on(event, onEvent);
    if (event !== 'close') link.on('close', onClose);
  });
}
