/**
 * `node --import tsx --expose-gc test/bench/memory-network.bench.ts [--peers 10000 --links 8 --messages 10 --bytes 1024]`
 *
 * The in-memory network's cost at the simulator's scale, on a ManualClock: `--peers` peers, each
 * initiating `--links / 2` links to random others (about `--links` link ends per peer), a latency model
 * from coordinates on a plane, then every link end sends `--messages` messages of `--bytes` bytes in
 * rounds. Two runs: unlimited rates (the defaults) and finite ones (upload, download, jitter, loss, a
 * share of symmetric NATs through a TURN relay). Prints wall time, messages per wall second, timers
 * per message and memory; no assertions on time.
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { ManualClock } from '../../peer/core/clock.ts';
import { MemoryNetwork, type MemoryNetworkConfig } from '../../peer/core/memory-transport.ts';
import type { PeerLink } from '../../peer/core/seams.ts';
import { Rng } from '../../sim/index.ts';

const { values: flags } = parseArgs({
  options: {
    peers: { type: 'string', default: '10000' },
    links: { type: 'string', default: '8' },
    messages: { type: 'string', default: '10' },
    bytes: { type: 'string', default: '1024' },
    seed: { type: 'string', default: '1' },
  },
});
const PEERS = Number(flags.peers);
const LINK_ENDS = Number(flags.links);
const MESSAGES = Number(flags.messages);
const BYTES = Number(flags.bytes);
for (const [name, v] of Object.entries({ PEERS, LINK_ENDS, MESSAGES, BYTES }))
  if (!Number.isInteger(v) || v < 1) {
    process.stderr.write(`memory-network.bench: ${name.toLowerCase()} must be an integer ≥ 1\n`);
    process.exit(2);
  }

/** Seeded uniform [0, 1): the simulator's generator, so a run is the same every time. */
const seeded = (seed: number): (() => number) => {
  const rng = new Rng(seed);
  return () => rng.next();
};

const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(0);
const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

interface Figures {
  connectWallS: number;
  sendWallS: number;
  messages: number;
  timers: number;
  simulatedS: number;
  heapMiB: number;
  rssMiB: number;
}

function run(name: string, finite: boolean): Figures {
  const random = seeded(Number(flags.seed));
  const ids = Array.from({ length: PEERS }, (_, i) => `p${i}`);
  // Peers on a 200 ms × 200 ms plane: one-way latency = distance / 2 + 5 ms.
  const xy = new Map(ids.map((id) => [id, [random() * 200, random() * 200] as const]));
  const latencyModel = (a: string, b: string): number => {
    const [ax, ay] = xy.get(a)!;
    const [bx, by] = xy.get(b)!;
    return 5 + Math.hypot(ax - bx, ay - by) / 2;
  };
  const clock = new ManualClock();
  const config: Partial<MemoryNetworkConfig> = finite
    ? {
        latencyModel,
        uploadBytesPerS: 1_000_000,
        downloadBytesPerS: 4_000_000,
        jitterMs: 5,
        lossRate: 0.01,
        handshakeMs: 100,
        random,
      }
    : { latencyModel };
  const net = new MemoryNetwork(clock, config);
  if (finite) {
    net.addTurnRelay({ id: 'turn', uploadBytesPerS: 50_000_000, latencyMs: 20 });
    for (const id of ids) if (random() < 0.2) net.setNatType(id, 'symmetric');
  }
  gc();
  const heap0 = process.memoryUsage().heapUsed;

  // Links: each peer dials LINK_ENDS / 2 random others (about LINK_ENDS ends per peer).
  const t0 = performance.now();
  const ends: PeerLink[] = [];
  for (const a of ids) {
    for (let k = 0; k < LINK_ENDS / 2; k++) {
      let b = ids[Math.floor(random() * PEERS)]!;
      if (b === a) b = ids[(ids.indexOf(a) + 1) % PEERS]!;
      const la = net.transport(a).createLink({ localId: a, remoteId: b, initiator: true, iceServers: [] });
      const lb = net.transport(b).createLink({ localId: b, remoteId: a, initiator: false, iceServers: [] });
      la.on('signal', (s) => lb.signal(s));
      lb.on('signal', (s) => la.signal(s));
      ends.push(la, lb);
    }
  }
  clock.advance(10_000);
  const connected = ends.filter((l) => l.connected);
  const connectWallS = (performance.now() - t0) / 1000;

  let received = 0;
  for (const l of connected) l.on('data', () => received++);
  const payload = new Uint8Array(BYTES).fill(7);
  const simStart = clock.now();
  let timers = 0;
  const t1 = performance.now();
  for (let m = 0; m < MESSAGES; m++) {
    for (const l of connected) l.send(payload);
    timers += clock.advance(50);
  }
  for (;;) {
    const due = clock.nextDueMs();
    if (due === undefined) break;
    timers += clock.advance(Math.max(0, due - clock.now()) + 1000);
  }
  const sendWallS = (performance.now() - t1) / 1000;
  const mem = process.memoryUsage();
  const totals = net.totals();
  if (totals.sentMessages !== received + totals.discardedMessages)
    throw new Error(`${name}: conservation broken: ${JSON.stringify(totals)} received ${received}`);
  const figures: Figures = {
    connectWallS,
    sendWallS,
    messages: received,
    timers,
    simulatedS: (clock.now() - simStart) / 1000,
    heapMiB: (mem.heapUsed - heap0) / 1024 / 1024,
    rssMiB: mem.rss / 1024 / 1024,
  };
  console.log(
    `${name.padEnd(9)} links=${ends.length / 2} connected_ends=${connected.length} ` +
      `connect_wall_s=${connectWallS.toFixed(2)} messages=${received} send_wall_s=${sendWallS.toFixed(2)} ` +
      `msgs_per_wall_s=${Math.round(received / sendWallS)} timers_per_msg=${(timers / received).toFixed(2)} ` +
      `simulated_s=${figures.simulatedS.toFixed(1)} relayed_mib=${mib(totals.relayedBytes)} ` +
      `heap_delta_mib=${figures.heapMiB.toFixed(0)} rss_mib=${figures.rssMiB.toFixed(0)}`,
  );
  return figures;
}

console.log(
  `memory-network bench: peers=${PEERS} link_ends_per_peer≈${LINK_ENDS} messages_per_end=${MESSAGES} bytes=${BYTES}`,
);
const unlimited = run('unlimited', false);
const finite = run('finite', true);
console.log(
  `summary unlimited_msgs_per_s=${Math.round(unlimited.messages / unlimited.sendWallS)} ` +
    `finite_msgs_per_s=${Math.round(finite.messages / finite.sendWallS)} peers=${PEERS}`,
);
