/**
 * The load generator of `npm run bench:stun`, in its own process (so its CPU does not share an event
 * loop with the server under test): `sockets` UDP sockets on 127.0.0.1, each connected to the server,
 * keep a sliding window of Binding requests in flight (RFC 8489, encoded by the stun room's codec, a
 * fresh random transaction id each), matching responses by transaction id.
 *
 * One `run` command (stdin/stdout, see rpc.ts): `warmupS` of load that is not counted, then `durationS`
 * measured, then a drain (no new requests; outstanding ones get `timeoutMs` to come back, uncounted).
 * Every response is validated: it must parse, be a Binding success response and carry an
 * XOR-MAPPED-ADDRESS equal to the address of the socket that sent the request; anything else is
 * counted as invalid by reason and not answered. A request unanswered after `timeoutMs` is lost
 * (and replaced, so the window stays full); a response that matches no request in flight (it came
 * after the time-out, or was never asked for) is counted as late.
 * Events: `phase {phase: 'measure' | 'drain'}` the moment the measured window opens and closes (the
 * parent samples the server's CPU time then), and `tick` every second with that second's counts.
 */
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import {
  encodeStunMessage,
  findAttribute,
  parseStunMessage,
  randomTransactionId,
  STUN_ATTR,
  STUN_HEADER_BYTES,
  STUN_METHOD,
} from '../../../stun/index.ts';
import { serve } from './rpc.ts';

export interface StunLoadOptions {
  host: string;
  port: number;
  warmupS: number;
  durationS: number;
  /** Requests in flight over all sockets (split evenly, at least one per socket). */
  window: number;
  sockets: number;
  timeoutMs: number;
  /** Latencies sent back for the report's histogram (evenly spaced quantiles of all of them). */
  latencySample: number;
  /**
   * Wall-clock time (Date.now()) at which to start sending, so that several load processes run their
   * phases together; absent: at once.
   */
  startAtEpochMs?: number;
}

export const DEFAULT_STUN_LOAD: StunLoadOptions = {
  host: '127.0.0.1',
  port: 3478,
  warmupS: 2,
  durationS: 10,
  window: 128,
  sockets: 4,
  timeoutMs: 1000,
  latencySample: 20_000,
};

export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** Width of a latency histogram bucket (ms): fine enough for loopback, mergeable across processes. */
export const LATENCY_BUCKET_MS = 0.01;
/** A sparse latency histogram: [bucket index (latency / LATENCY_BUCKET_MS, floored), count]. */
export type LatencyHistogram = [number, number][];

/** Quantiles of merged histograms (each bucket read as its midpoint), exact max and mean. */
export function latencyFromHistograms(
  parts: readonly { histogram: LatencyHistogram; max: number; sum: number }[],
): LatencySummary {
  const merged = new Map<number, number>();
  for (const p of parts) for (const [b, c] of p.histogram) merged.set(b, (merged.get(b) ?? 0) + c);
  const buckets = [...merged].sort((a, b) => a[0] - b[0]);
  const count = buckets.reduce((n, [, c]) => n + c, 0);
  const max = Math.max(-Infinity, ...parts.map((p) => p.max));
  const q = (p: number) => {
    if (count === 0) return NaN;
    const rank = Math.ceil(p * count);
    let seen = 0;
    for (const [b, c] of buckets) {
      seen += c;
      if (seen >= rank) return Math.min(max, (b + 0.5) * LATENCY_BUCKET_MS);
    }
    return max;
  };
  return {
    count,
    p50: q(0.5),
    p95: q(0.95),
    p99: q(0.99),
    p999: q(0.999),
    max: count ? max : NaN,
    mean: count ? parts.reduce((s, p) => s + p.sum, 0) / count : NaN,
  };
}

export interface StunLoadResult {
  options: StunLoadOptions;
  /** Measured window, seconds (actual, from the timers' firing). */
  measuredS: number;
  /** Requests sent during the measured window. */
  sent: number;
  /** Valid responses received during the measured window. */
  answered: number;
  answeredPerS: number;
  /** Requests that timed out during the measured window. */
  lost: number;
  /** Responses that matched no request in flight: late (after the time-out) or unknown (any phase). */
  late: number;
  /** Invalid responses during the measured window, reason → count. */
  invalid: Record<string, number>;
  /** Socket errors (any phase), code → count. */
  socketErrors: Record<string, number>;
  /** Response latency of the answered requests, ms (exact); `latencyHistogram` to merge processes. */
  latencyMs: LatencySummary;
  latencyHistogram: LatencyHistogram;
  latencySumMs: number;
  latencySampleMs: number[];
  /** Requests in flight when the measured window closed. */
  outstandingAtEnd: number;
  /** Answered per second, [seconds since the measured window opened, answered/s in the second before] (warm-up included, negative). */
  perSecond: [number, number][];
  /** The load process's own CPU time over the measured window, % of one core. */
  clientCpuPct: number;
}

export interface StunLoadTick {
  phase: 'warmup' | 'measure';
  /** Seconds since the measured window opened (negative during the warm-up). */
  atS: number;
  /** Valid responses since the previous tick, and per second. */
  answered: number;
  answeredPerS: number;
  lost: number;
  invalid: number;
}

export type StunLoadCommands = {
  run: { args: Partial<StunLoadOptions>; result: StunLoadResult };
};

type Phase = 'warmup' | 'measure' | 'drain';

interface Flow {
  sock: dgram.Socket;
  /** Our own address, which XOR-MAPPED-ADDRESS must echo. */
  address: string;
  port: number;
  /** Transaction id (latin1 string of its 12 bytes) → send time (performance.now()). Insertion order = send order. */
  inFlight: Map<string, number>;
}

function validate(o: StunLoadOptions): void {
  const int = (name: string, v: number, min: number) => {
    if (!Number.isInteger(v) || v < min)
      throw new RangeError(`${name} must be an integer ≥ ${min} (got ${v})`);
  };
  int('port', o.port, 1);
  int('window', o.window, 1);
  int('sockets', o.sockets, 1);
  int('timeoutMs', o.timeoutMs, 1);
  int('latencySample', o.latencySample, 0);
  if (!(o.warmupS >= 0) || !(o.durationS > 0)) throw new RangeError('warmupS ≥ 0 and durationS > 0');
  if (o.sockets > o.window)
    throw new RangeError(`sockets (${o.sockets}) must not exceed window (${o.window})`);
}

function summarize(latencies: Float64Array): LatencySummary & { sum: number } {
  latencies.sort();
  const n = latencies.length;
  const q = (p: number) => {
    if (n === 0) return NaN;
    const pos = (n - 1) * p;
    const lo = Math.floor(pos);
    const hi = Math.ceil(pos);
    return latencies[lo]! + (latencies[hi]! - latencies[lo]!) * (pos - lo);
  };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += latencies[i]!;
  return {
    count: n,
    p50: q(0.5),
    p95: q(0.95),
    p99: q(0.99),
    p999: q(0.999),
    max: n ? latencies[n - 1]! : NaN,
    mean: n ? sum / n : NaN,
    sum,
  };
}

function histogram(sorted: Float64Array): LatencyHistogram {
  const out: LatencyHistogram = [];
  for (const v of sorted) {
    const b = Math.floor(v / LATENCY_BUCKET_MS);
    const last = out.at(-1);
    if (last && last[0] === b) last[1]++;
    else out.push([b, 1]);
  }
  return out;
}

const bindConnected = (host: string, port: number) =>
  new Promise<dgram.Socket>((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    sock.once('error', reject);
    sock.bind(0, host, () =>
      sock.connect(port, host, () => {
        sock.off('error', reject);
        resolve(sock);
      }),
    );
  });

/** Runs one load: warm-up, measured window, drain. `emit` gets the phase and tick events. */
export async function runStunLoad(
  given: Partial<StunLoadOptions>,
  emit: (event: string, data?: object) => void = () => {},
): Promise<StunLoadResult> {
  const o: StunLoadOptions = { ...DEFAULT_STUN_LOAD, ...given };
  validate(o);
  const flows: Flow[] = [];
  for (let i = 0; i < o.sockets; i++) {
    const sock = await bindConnected(o.host, o.port);
    const a = sock.address();
    flows.push({ sock, address: a.address, port: a.port, inFlight: new Map() });
  }
  const perFlow = flows.map((_, i) => Math.floor(o.window / o.sockets) + (i < o.window % o.sockets ? 1 : 0));

  let phase: Phase = 'warmup';
  let sent = 0;
  let answered = 0;
  let lost = 0;
  let late = 0;
  let invalidTotal = 0;
  let tickAnswered = 0; // warm-up answers since the last tick (measured ones are in `answered`)
  const invalid: Record<string, number> = {};
  const socketErrors: Record<string, number> = {};
  // Growable latency buffer (ms); ~1 M answers fit in 8 MB.
  let latencies = new Float64Array(1 << 16);
  let nLat = 0;
  const addLatency = (ms: number) => {
    if (nLat === latencies.length) {
      const bigger = new Float64Array(latencies.length * 2);
      bigger.set(latencies);
      latencies = bigger;
    }
    latencies[nLat++] = ms;
  };
  const countInvalid = (reason: string) => {
    if (phase !== 'measure') return;
    invalid[reason] = (invalid[reason] ?? 0) + 1;
    invalidTotal++;
  };

  const sendOne = (f: Flow) => {
    const transactionId = randomTransactionId();
    const datagram = encodeStunMessage({
      class: 'request',
      method: STUN_METHOD.binding,
      transactionId,
      attributes: [],
    });
    f.inFlight.set(
      Buffer.from(transactionId.buffer, transactionId.byteOffset, 12).toString('latin1'),
      performance.now(),
    );
    f.sock.send(datagram);
    if (phase === 'measure') sent++;
  };

  const onMessage = (f: Flow, msg: Buffer) => {
    const now = performance.now();
    if (msg.length < STUN_HEADER_BYTES) return countInvalid('too-short');
    const key = msg.toString('latin1', 8, 20);
    const sentAt = f.inFlight.get(key);
    if (sentAt === undefined) {
      late++;
      return;
    }
    f.inFlight.delete(key);
    const parsed = parseStunMessage(msg);
    let reason: string | undefined;
    if (!parsed.ok) reason = `parse:${parsed.reason}`;
    else if (parsed.message.method !== STUN_METHOD.binding) reason = 'not-binding';
    else if (parsed.message.class !== 'success') reason = `class:${parsed.message.class}`;
    else {
      const xma = findAttribute(parsed.message, STUN_ATTR.XOR_MAPPED_ADDRESS, 'address');
      if (!xma) reason = 'no-xor-mapped-address';
      else if (xma.address.address !== f.address || xma.address.port !== f.port)
        reason = 'wrong-xor-mapped-address';
    }
    if (reason) countInvalid(reason);
    else if (phase === 'measure') {
      answered++;
      addLatency(now - sentAt);
    } else if (phase === 'warmup') tickAnswered++;
    if (phase !== 'drain') sendOne(f);
  };

  for (const f of flows) {
    f.sock.on('message', (msg) => onMessage(f, msg));
    f.sock.on('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? err.message;
      socketErrors[code] = (socketErrors[code] ?? 0) + 1;
    });
  }

  // Timeouts: the oldest requests come first in each Map, so a sweep stops at the first young one.
  const sweep = setInterval(() => {
    const deadline = performance.now() - o.timeoutMs;
    for (const f of flows) {
      let expired = 0;
      for (const [key, at] of f.inFlight) {
        if (at > deadline) break;
        f.inFlight.delete(key);
        expired++;
      }
      if (phase === 'measure') lost += expired;
      if (phase !== 'drain') for (let i = 0; i < expired; i++) sendOne(f);
    }
  }, 50);

  // Per-second ticks (warm-up included), for the progress lines and the rps-over-time plot. The
  // ticker restarts when the measured window opens, so ticks fall on whole seconds of it.
  if (o.startAtEpochMs !== undefined) await sleep(o.startAtEpochMs - Date.now());
  const t0 = performance.now();
  let m0 = t0 + o.warmupS * 1000; // when the measured window opens (exact once it has)
  let lastTick = { at: t0, answered: 0, lost: 0, invalid: 0 };
  const perSecond: [number, number][] = [];
  const tick = () => {
    const now = performance.now();
    const dt = (now - lastTick.at) / 1000;
    if (phase === 'drain' || dt < 0.25) return; // a sliver at a phase change: not worth a point
    const count = phase === 'measure' ? answered - lastTick.answered : tickAnswered;
    const t: StunLoadTick = {
      phase,
      atS: (now - m0) / 1000,
      answered: count,
      answeredPerS: count / dt,
      lost: lost - lastTick.lost,
      invalid: invalidTotal - lastTick.invalid,
    };
    perSecond.push([Math.round(t.atS * 100) / 100, Math.round(t.answeredPerS)]);
    emit('tick', t);
    tickAnswered = 0;
    lastTick = { at: now, answered, lost, invalid: invalidTotal };
  };
  let ticker = setInterval(tick, 1000);

  flows.forEach((f, i) => {
    for (let k = 0; k < perFlow[i]!; k++) sendOne(f);
  });

  await sleep(o.warmupS * 1000);
  tick();
  phase = 'measure';
  m0 = performance.now();
  const cpu0 = process.cpuUsage();
  emit('phase', { phase: 'measure' });
  lastTick = { at: m0, answered: 0, lost: 0, invalid: 0 };
  clearInterval(ticker);
  ticker = setInterval(tick, 1000);

  await sleep(o.durationS * 1000);
  tick();
  const cpu1 = process.cpuUsage(cpu0);
  const m1 = performance.now();
  phase = 'drain';
  emit('phase', { phase: 'drain' });
  clearInterval(ticker);
  const outstandingAtEnd = flows.reduce((n, f) => n + f.inFlight.size, 0);

  // Drain: let the last responses come back (so nothing lands on a closed socket), uncounted.
  const drainEnd = performance.now() + o.timeoutMs;
  while (flows.some((f) => f.inFlight.size > 0) && performance.now() < drainEnd) await sleep(20);
  clearInterval(sweep);
  await Promise.all(flows.map((f) => new Promise<void>((r) => f.sock.close(() => r()))));

  const measuredS = (m1 - m0) / 1000;
  const all = latencies.subarray(0, nLat);
  const { sum, ...latencyMs } = summarize(all); // sorts `all` in place
  const step = Math.max(1, nLat / Math.max(1, o.latencySample));
  const latencySampleMs: number[] = [];
  if (o.latencySample > 0)
    for (let i = 0; i < nLat; i += step) latencySampleMs.push(Math.round(all[Math.floor(i)]! * 1000) / 1000);
  return {
    options: o,
    measuredS,
    sent,
    answered,
    answeredPerS: answered / measuredS,
    lost,
    late,
    invalid,
    socketErrors,
    latencyMs,
    latencyHistogram: histogram(all),
    latencySumMs: sum,
    latencySampleMs,
    outstandingAtEnd,
    perSecond,
    clientCpuPct: ((cpu1.user + cpu1.system) / 1000 / (m1 - m0)) * 100,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

// Started as a child process (by stun.bench.ts through RpcChild): serve `run`, say `ready`.
if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const link: { emit: (event: string, data?: object) => void } = serve<StunLoadCommands>({
    run: (args) => runStunLoad(args, link.emit),
  });
  link.emit('ready', { pid: process.pid });
}
