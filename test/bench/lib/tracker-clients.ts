/**
 * The bench peers of `npm run bench:tracker`, all in this one process: N socket.io clients (websocket
 * transport) that join the tracker's channel, keep the neighbour lists the tracker gives them, and relay
 * timestamped ICE candidates to each other through the tracker.
 * Commands (stdin/stdout, see rpc.ts): `connect` (ramp up N joins with bounded concurrency, `progress`
 * events), `count`, `relay` (steady rate of `signal`s between random introduced pairs; `relay-progress`
 * and `relay-sent` events), `disconnect`.
 */
import { performance } from 'node:perf_hooks';
import { io, type Socket } from 'socket.io-client';
import type { ClientToServerEvents, SignalData, ServerToClientEvents } from '../../../protocol/index.ts';
import { LoopWatch, type LoopReport } from './loop-watch.ts';
import { serve } from './rpc.ts';
import { quantile } from './stats.ts';

type Sock = Socket<ServerToClientEvents, ClientToServerEvents>;

interface Peer {
  socket: Sock;
  id: string | null;
  /** Peers the tracker introduced (join ack, then `neighbours` add/remove). */
  neighbours: Set<string>;
}

export interface ConnectArgs {
  url: string;
  n: number;
  concurrency: number;
  channel: string;
  rendition: string;
  timeoutMs?: number;
}
export interface ConnectResult {
  acked: number;
  failed: number;
  /** Failure reason → count. */
  errors: Record<string, number>;
  durationS: number;
  /** [seconds since the first connect, joins acknowledged so far]. */
  timeline: [number, number][];
  /** Connect → join acknowledged, per peer (ms). */
  joinMs: { p50: number; p95: number; p99: number; max: number };
}
export interface CountResult {
  sockets: number;
  connected: number;
  /** Connected and joined (join acknowledged). */
  joined: number;
  meanNeighbours: number;
  /** Disconnect reason → count since the last `connect` (client-initiated ones excluded). */
  disconnects: Record<string, number>;
  rss: number;
}
export interface RelayArgs {
  rate: number;
  seconds: number;
  /** How long to wait for stragglers after the last send. */
  drainMs: number;
}
export interface RelayResult {
  sent: number;
  received: number;
  /** Refused by the tracker (ack with an error), by code. */
  refused: Record<string, number>;
  /** Neither received nor refused after the drain. */
  lost: number;
  /** Delivered to a peer other than the addressee, or from another sender, or twice. */
  misdelivered: number;
  /** Sends skipped because no connected peer had a connected neighbour. */
  noPair: number;
  /** Send → receive (ms), in order of arrival, and when each was sent (s since the first send). */
  latencyMs: number[];
  sentAtS: number[];
  /** Achieved send rate (messages/s over the sending window). */
  sendRate: number;
  /** Wall-clock time (epoch ms) of the first send: `sentAtS` are relative to it. */
  t0Epoch: number;
  /** This process's CPU time (µs) while sending. */
  sendCpuUs: number;
  /** This process's event loop during the relay: sender and receiver share it. */
  loop: LoopReport;
}

export type ClientCommands = {
  connect: { args: ConnectArgs; result: ConnectResult };
  count: { args: object; result: CountResult };
  relay: { args: RelayArgs; result: RelayResult };
  disconnect: { args: object; result: { closed: number } };
};

let peers: Peer[] = [];
const byId = new Map<string, Peer>();
let disconnects: Record<string, number> = {};

/** State of the relay in progress: per message, the addressee and sender, and whether it arrived. */
let relay: {
  t0: number;
  to: string[];
  from: string[];
  sentAt: number[];
  /** 0 pending, 1 received, 2 refused. */
  state: Uint8Array;
  latencyMs: number[];
  sentAtS: number[];
  misdelivered: number;
  settled: number;
} | null = null;

const CANDIDATE = /^candidate:(\d+) 1 udp 2122260223 127\.0\.0\.1 \d+ typ host generation 0 ts ([\d.]+)$/;

function onSignal(peer: Peer, msg: { from: string; data: SignalData }): void {
  const now = performance.now();
  const r = relay;
  if (!r || !('type' in msg.data) || msg.data.type !== 'candidate') return;
  const m = CANDIDATE.exec(msg.data.candidate.candidate);
  if (!m) return void r.misdelivered++;
  const seq = Number(m[1]);
  if (r.state[seq] !== 0 || r.to[seq] !== peer.id || r.from[seq] !== msg.from) return void r.misdelivered++;
  r.state[seq] = 1;
  r.settled++;
  r.latencyMs.push(now - Number(m[2]));
  r.sentAtS.push((r.sentAt[seq]! - r.t0) / 1000);
}

function openOne(a: ConnectArgs): Promise<{ ok: true; ms: number } | { ok: false; reason: string }> {
  return new Promise((resolve) => {
    const t = performance.now();
    const socket: Sock = io(a.url, {
      transports: ['websocket'],
      forceNew: true,
      reconnection: false,
      timeout: a.timeoutMs ?? 60_000,
    });
    const peer: Peer = { socket, id: null, neighbours: new Set() };
    peers.push(peer);
    let done = false;
    const finish = (r: { ok: true; ms: number } | { ok: false; reason: string }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => finish({ ok: false, reason: 'timeout' }), a.timeoutMs ?? 60_000);
    socket.on('connect_error', (err) => finish({ ok: false, reason: `connect_error: ${err.message}` }));
    socket.on('neighbours', (u) => {
      for (const id of u.add) peer.neighbours.add(id);
      for (const id of u.remove) peer.neighbours.delete(id);
    });
    socket.on('signal', (msg) => onSignal(peer, msg));
    socket.on('disconnect', (reason) => {
      if (reason !== 'io client disconnect') disconnects[reason] = (disconnects[reason] ?? 0) + 1;
      if (peer.id) byId.delete(peer.id);
      finish({ ok: false, reason: `disconnect: ${reason}` });
    });
    socket.once('connect', () => {
      socket.emit(
        'join',
        { protocolVersion: 1, channel: a.channel, kind: 'node', rendition: a.rendition, uploadKbps: 5000 },
        (ack) => {
          if (!ack.ok) return finish({ ok: false, reason: `join refused: ${ack.error.code}` });
          peer.id = ack.peerId;
          byId.set(ack.peerId, peer);
          for (const id of ack.neighbours) peer.neighbours.add(id);
          finish({ ok: true, ms: performance.now() - t });
        },
      );
    });
  });
}

const watch = new LoopWatch();

const { emit } = serve<ClientCommands>(
  {
    async connect(a) {
      disconnects = {};
      const t0 = performance.now();
      const since = () => (performance.now() - t0) / 1000;
      let next = 0;
      let acked = 0;
      let failed = 0;
      const errors: Record<string, number> = {};
      const joinMs: number[] = [];
      const timeline: [number, number][] = [[0, 0]];
      const tick = setInterval(() => {
        timeline.push([since(), acked]);
        emit('progress', { acked, failed, n: a.n, elapsedS: since() });
      }, 250);
      const worker = async () => {
        while (next < a.n) {
          next++;
          const r = await openOne(a);
          if (r.ok) {
            acked++;
            joinMs.push(r.ms);
          } else {
            failed++;
            errors[r.reason] = (errors[r.reason] ?? 0) + 1;
          }
        }
      };
      await Promise.all(Array.from({ length: Math.max(1, Math.min(a.concurrency, a.n)) }, worker));
      clearInterval(tick);
      const durationS = since();
      timeline.push([durationS, acked]);
      return {
        acked,
        failed,
        errors,
        durationS,
        timeline,
        joinMs: {
          p50: quantile(joinMs, 0.5),
          p95: quantile(joinMs, 0.95),
          p99: quantile(joinMs, 0.99),
          max: Math.max(0, ...joinMs),
        },
      };
    },

    count() {
      let connected = 0;
      let joined = 0;
      let neighbours = 0;
      for (const p of peers) {
        if (!p.socket.connected) continue;
        connected++;
        if (p.id) {
          joined++;
          neighbours += p.neighbours.size;
        }
      }
      return {
        sockets: peers.length,
        connected,
        joined,
        meanNeighbours: joined ? neighbours / joined : 0,
        disconnects: { ...disconnects },
        rss: process.memoryUsage().rss,
      };
    },

    async relay(a) {
      const capacity = Math.ceil(a.rate * a.seconds) + 16;
      const r = (relay = {
        t0: performance.now(),
        to: new Array<string>(capacity),
        from: new Array<string>(capacity),
        sentAt: new Array<number>(capacity),
        state: new Uint8Array(capacity),
        latencyMs: [],
        sentAtS: [],
        misdelivered: 0,
        settled: 0,
      });
      const refused: Record<string, number> = {};
      const senders = peers.filter((p) => p.id !== null && p.neighbours.size > 0);
      watch.reset();
      const cpuFrom = process.cpuUsage();
      let sent = 0;
      let noPair = 0;
      const pick = (): [Peer, string] | undefined => {
        for (let tries = 0; tries < 50 && senders.length > 0; tries++) {
          const p = senders[Math.floor(Math.random() * senders.length)]!;
          if (!p.socket.connected || !p.id || p.neighbours.size === 0) continue;
          const ns = [...p.neighbours];
          const to = ns[Math.floor(Math.random() * ns.length)]!;
          if (byId.get(to)?.socket.connected) return [p, to];
        }
        return undefined;
      };
      const sendOne = () => {
        const pair = pick();
        if (!pair) return void noPair++;
        const [p, to] = pair;
        const seq = sent++;
        const at = performance.now();
        r.to[seq] = to;
        r.from[seq] = p.id!;
        r.sentAt[seq] = at;
        const data: SignalData = {
          type: 'candidate',
          candidate: {
            candidate: `candidate:${seq} 1 udp 2122260223 127.0.0.1 ${10_000 + (seq % 50_000)} typ host generation 0 ts ${at.toFixed(3)}`,
            sdpMid: '0',
            sdpMLineIndex: 0,
          },
        };
        p.socket.emit('signal', { to, data }, (ack) => {
          if (ack.ok || r.state[seq] !== 0) return;
          r.state[seq] = 2;
          r.settled++;
          refused[ack.error.code] = (refused[ack.error.code] ?? 0) + 1;
        });
      };
      const total = Math.round(a.rate * a.seconds);
      let lastProgress = r.t0;
      await new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          const now = performance.now();
          const due = Math.min(total, Math.floor(((now - r.t0) / 1000) * a.rate));
          while (sent + noPair < due) sendOne();
          if (now - lastProgress >= 1000) {
            lastProgress = now;
            emit('relay-progress', { sent, received: r.latencyMs.length, elapsedS: (now - r.t0) / 1000 });
          }
          if (sent + noPair >= total) {
            clearInterval(timer);
            resolve();
          }
        }, 1);
      });
      const sendWindowS = (performance.now() - r.t0) / 1000;
      const cpu = process.cpuUsage(cpuFrom);
      const sendCpuUs = cpu.user + cpu.system;
      emit('relay-sent', { sent, sendCpuUs });
      const drainEnd = performance.now() + a.drainMs;
      while (r.settled < sent && performance.now() < drainEnd)
        await new Promise((res) => setTimeout(res, 20));
      const loop = watch.report();
      relay = null;
      return {
        sent,
        received: r.latencyMs.length,
        refused,
        lost: sent - r.settled,
        misdelivered: r.misdelivered,
        noPair,
        latencyMs: r.latencyMs,
        sentAtS: r.sentAtS,
        sendRate: sent / sendWindowS,
        t0Epoch: performance.timeOrigin + r.t0,
        sendCpuUs,
        loop,
      };
    },

    async disconnect() {
      const closed = peers.length;
      for (const p of peers) p.socket.disconnect();
      peers = [];
      byId.clear();
      // Let the close frames go out before the next phase.
      await new Promise((r) => setTimeout(r, 200));
      return { closed };
    },
  },
  () => {
    for (const p of peers) p.socket.disconnect();
  },
);
emit('ready', { pid: process.pid });
