/**
 * The tracker under test for `npm run bench:tracker`, in its own process: one `Tracker` on 127.0.0.1
 * (random port) with per-IP limits off (every bench client comes from 127.0.0.1), generous per-socket
 * rate limits, peer timeouts off (bench peers send no reports) and one registered channel.
 * Reports `ready {port, channel, rendition}` on stdout, then answers `stats` (RSS, CPU time, event-loop
 * delay, peers, sockets, relayed signals, refusals) and `resetLag`. Run with `--expose-gc` so `stats`
 * can collect garbage before reading RSS. Stops (tracker destroyed) when stdin closes.
 */
import { performance } from 'node:perf_hooks';
import { Tracker } from '../../../tracker/index.ts';
import { signedRegistration } from '../../helpers/registration.ts';
import { LoopWatch, type LoopReport } from './loop-watch.ts';
import { serve } from './rpc.ts';

const BENCH_CHANNEL = 'bench';
const BENCH_RENDITION = '360p';

export interface TrackerStats extends LoopReport {
  rss: number;
  heapUsed: number;
  external: number;
  /** process.cpuUsage(), µs. */
  cpuUserUs: number;
  cpuSystemUs: number;
  /** performance.now() when read (ms), to turn CPU time into a share of wall time. */
  atMs: number;
  peers: number;
  sockets: number;
  signalsRelayed: number;
  /** `event:code` → count, since start. */
  rejected: Record<string, number>;
}

export type TrackerCommands = {
  stats: { args: { gc?: boolean }; result: TrackerStats };
  resetLag: { args: object; result: null };
};

const tracker = new Tracker({
  maxConnectionsPerIp: 0,
  ipConnectRate: 0,
  socketEventRate: 10_000,
  socketEventBurst: 10_000,
  maxPeers: 1_000_000,
  // Bench peers do not report; keep them from being swept as silent.
  reportIntervalMs: 3_600_000,
  peerTimeoutMs: 7_200_000,
});
const rejected: Record<string, number> = {};
tracker.on('rejected', (r) => {
  const key = `${r.event}:${r.code}`;
  rejected[key] = (rejected[key] ?? 0) + 1;
});
await tracker.register(
  signedRegistration(BENCH_CHANNEL, {
    title: 'Tracker benchmark',
    originUrl: 'http://127.0.0.1:9/',
    renditions: [{ name: BENCH_RENDITION, width: 640, height: 360, bandwidthBps: 1_000_000 }],
    livePlaylist: null,
  }),
  '127.0.0.1',
);
const port = await tracker.listen(0, '127.0.0.1');

const watch = new LoopWatch();
const gc = (globalThis as { gc?: () => void }).gc;

const { emit } = serve<TrackerCommands>(
  {
    async stats({ gc: collect }) {
      if (collect && gc) {
        gc();
        await new Promise((r) => setTimeout(r, 50));
        gc();
      }
      const mem = process.memoryUsage();
      const cpu = process.cpuUsage();
      const signals = (await tracker.metrics.signals.get()).values[0]?.value ?? 0;
      return {
        rss: mem.rss,
        heapUsed: mem.heapUsed,
        external: mem.external,
        cpuUserUs: cpu.user,
        cpuSystemUs: cpu.system,
        atMs: performance.now(),
        peers: await tracker.store.countPeers(),
        sockets: tracker.io.engine.clientsCount,
        signalsRelayed: signals,
        rejected: { ...rejected },
        ...watch.report(),
      };
    },
    resetLag() {
      watch.reset();
      return null;
    },
  },
  () => tracker.destroy(),
);
emit('ready', { port, channel: BENCH_CHANNEL, rendition: BENCH_RENDITION, pid: process.pid });
