/**
 * Viewers come back after a tracker restart (real tracker, real socket.io, real time): the tracker is
 * killed (its TCP connections reset, as with `kill -9`), a fresh one listens on the same port a moment
 * later, and the source registers the channel again only after a random delay of up to 3 s. Every
 * viewer must be in the tracker's peer list again within 10 s of the kill, in 10 of 10 restarts.
 * Viewers are real engines (SocketIoTrackerConnection, its reconnection delays, the engine's join retry)
 * on the wall clock, with an in-memory origin; they make no P2P links here.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { TRACKER_PROTOCOL_VERSION } from '../../protocol/index.ts';
import { PeerEngine } from '../../peer/core/engine.ts';
import { MemoryNetwork } from '../../peer/core/memory-transport.ts';
import { MemorySegmentStore } from '../../peer/core/segment-store.ts';
import { realClock } from '../../peer/platform/clock.ts';
import { SocketIoTrackerConnection } from '../../peer/platform/tracker-connection.ts';
import { Tracker } from '../../tracker/index.ts';
import { FakeOrigin } from './fakes.ts';

const CHANNEL = 'restart';
const VIEWERS = 4;
const RESTARTS = 10;
const TARGET_MS = 10_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let origin: FakeOrigin;
let tracker: Tracker;
let port = 0;
const sockets = new Set<Socket>();
const engines: { engine: PeerEngine; conn: SocketIoTrackerConnection }[] = [];

async function startTracker(): Promise<void> {
  tracker = new Tracker({ reportIntervalMs: 1000 });
  tracker.server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  port = await tracker.listen(port);
}

/** Like `kill -9`: connections reset without a goodbye, then the process is gone. */
async function killTracker(): Promise<void> {
  for (const s of sockets) s.resetAndDestroy();
  sockets.clear();
  await tracker.destroy();
}

/** The source registers its channel (signed with the origin's key), as it does after a reconnection. */
async function register(): Promise<void> {
  const info = origin.channelInfo();
  const reg = origin.store.signer.signRegistration({
    protocolVersion: TRACKER_PROTOCOL_VERSION,
    channel: CHANNEL,
    title: 'Restart test',
    publicKey: origin.publicKey,
    originUrl: info.originUrl,
    status: 'live',
    segmentDurationS: info.segmentDurationS,
    renditions: info.renditions,
    livePlaylist: info.livePlaylist,
    recordings: [],
    signedAtMs: Date.now(),
  });
  const res = await fetch(`${tracker.url}/api/channels/${CHANNEL}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(reg),
  });
  assert.equal(res.status, 200, await res.text());
}

async function viewersInTracker(): Promise<number> {
  const res = await fetch(`${tracker.url}/api/channels/${CHANNEL}`);
  if (res.status !== 200) return 0;
  return ((await res.json()) as { viewers: number }).viewers;
}

before(async () => {
  origin = new FakeOrigin(realClock, { channel: CHANNEL, originUrl: 'http://origin.test', latencyMs: 1 });
  origin.publishMany(4);
  await startTracker();
  await register();
  const net = new MemoryNetwork(realClock);
  for (let i = 0; i < VIEWERS; i++) {
    const conn = new SocketIoTrackerConnection({ url: tracker.url });
    const engine = new PeerEngine(
      { channel: CHANNEL, maxNeighbours: 0 },
      {
        clock: realClock,
        transport: net.transport(`viewer${i}`),
        http: origin,
        tracker: conn,
        store: new MemorySegmentStore(),
      },
    );
    engines.push({ engine, conn });
    await engine.start();
  }
  assert.equal(await viewersInTracker(), VIEWERS);
});

after(async () => {
  for (const { engine, conn } of engines) {
    engine.destroy();
    conn.destroy();
  }
  await tracker?.destroy();
  origin?.close();
});

test(
  `after a tracker restart every viewer is back within ${TARGET_MS / 1000} s, ${RESTARTS} of ${RESTARTS} times`,
  { timeout: RESTARTS * 20_000 },
  async (t) => {
    const backMs: number[] = [];
    for (let i = 0; i < RESTARTS; i++) {
      const killedAt = Date.now();
      await killTracker();
      await sleep(500 + Math.random() * 1000); // the process restarts
      await startTracker();
      const registerDelayMs = Math.random() * 3000; // the source is slower than the viewers, or not
      const registered = sleep(registerDelayMs).then(register);
      let n = await viewersInTracker();
      while (n < VIEWERS && Date.now() - killedAt < 3 * TARGET_MS) {
        await sleep(100);
        n = await viewersInTracker();
      }
      const ms = Date.now() - killedAt;
      await registered;
      backMs.push(ms);
      t.diagnostic(
        `restart ${i + 1}: ${n}/${VIEWERS} viewers back ${ms} ms after the kill (source registered after ${Math.round(registerDelayMs)} ms)`,
      );
      assert.equal(n, VIEWERS, `restart ${i + 1}: only ${n} viewers back`);
    }
    t.diagnostic(`back after ${Math.min(...backMs)}–${Math.max(...backMs)} ms`);
    assert.ok(
      backMs.every((ms) => ms <= TARGET_MS),
      `back after ${backMs.join(', ')} ms`,
    );
  },
);
