/**
 * The session core's time and randomness seams: with a virtual clock and a seeded generator, the same
 * joins give the same peer ids, neighbours and first tier, run after run; pushes coalesce on the
 * injected clock (no real timer). The defaults stay the real ones.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MemoryTrackerStore,
  PushQueue,
  RandomPolicy,
  Reputation,
  Sessions,
  peerIdFrom,
  realTrackerClock,
  type ChannelRecord,
  type NeighbourChanges,
  type PeerEvent,
  type PeerHandle,
} from '../../tracker/index.ts';
import {
  PEER_ID_PATTERN,
  TRACKER_PROTOCOL_VERSION,
  type ChannelInfo,
  type ServerToClientEvents,
} from '../../protocol/index.ts';
import { ManualClock } from '../../peer/index.ts';
import { Rng } from '../../sim/rng.ts';
import { channelRecord } from '../helpers/channel-record.ts';
import { peerRecord } from '../helpers/peer-record.ts';

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

const channel = (renditions: string[]): ChannelRecord => channelRecord({}, renditions);

interface Received {
  at: number;
  event: PeerEvent;
  payload: unknown;
}

class Handle implements PeerHandle {
  connected = true;
  readonly got: Received[] = [];
  constructor(
    readonly ip: string,
    readonly clock: ManualClock,
  ) {}
  send<E extends PeerEvent>(event: E, payload: Parameters<ServerToClientEvents[E]>[0]): void {
    this.got.push({ at: this.clock.now(), event, payload });
  }
  disconnect(): void {
    this.connected = false;
  }
}

function core(seed: number, opts: { pushCoalesceMs?: number } = {}) {
  const clock = new ManualClock({ startMs: 0, wallStartMs: 1_700_000_000_000 });
  const rng = new Rng(seed);
  const storeRng = rng.fork('store');
  const policyRng = rng.fork('policy');
  const idRng = rng.fork('ids');
  const store = new MemoryTrackerStore({}, () => storeRng.next());
  const sessions = new Sessions(
    { pushCoalesceMs: opts.pushCoalesceMs ?? 20, targetNeighbours: 3, maxNeighbours: 5 },
    {
      store,
      policy: new RandomPolicy({}, () => policyRng.next()),
      reputation: new Reputation({}, () => clock.wallNow()),
      metrics: { joins: NOOP, leaves: NOOP, signals: NOOP, rateLimited: NOOP, quarantined: NOOP },
      channelInfo: async (id) => ({ id }) as ChannelInfo,
      iceServersFor: () => [],
      clock,
      random: () => idRng.next(),
    },
  );
  return { clock, store, sessions };
}
const NOOP = { inc: () => {} };

/** Joins `n` peers (two renditions), runs pushes and a rebalance, and returns everything observable. */
async function scenario(seed: number, n = 24) {
  const { clock, store, sessions } = core(seed);
  await store.putChannel('ch', channel(['180p', '360p']));
  const handles: Handle[] = [];
  const joins: { peerId: string; rendition: string; neighbours: string[]; firstTier: boolean }[] = [];
  for (let i = 0; i < n; i++) {
    const h = new Handle(`10.0.0.${i}`, clock);
    handles.push(h);
    const r = await sessions.join(sessions.open(h), {
      protocolVersion: TRACKER_PROTOCOL_VERSION,
      channel: 'ch',
      kind: 'node',
      mode: 'viewer',
      natType: 'unknown',
      uploadKbps: 1000,
      ...(i % 3 === 0 && { rendition: '360p' }),
    });
    joins.push({
      peerId: r.peerId,
      rendition: r.rendition,
      neighbours: r.neighbours,
      firstTier: r.firstTier,
    });
    clock.advance(7);
    await settle();
  }
  await sessions.rebalance();
  clock.advance(100);
  await settle();
  const peers = await store.channelPeers('ch');
  const result = {
    joins,
    firstTier: peers.filter((p) => p.firstTier).map((p) => p.id),
    links: await Promise.all(peers.map(async (p) => [p.id, await store.linksOf(p.id)] as const)),
    pushes: handles.map((h) => h.got),
  };
  sessions.destroy();
  return result;
}

describe('the session core on injected time and randomness', () => {
  test('the same seed gives the same ids, neighbours, first tier and pushes', async () => {
    const a = await scenario(1);
    const b = await scenario(1);
    assert.deepEqual(a, b);
    assert.equal(a.joins.length, 24);
    for (const j of a.joins) assert.match(j.peerId, PEER_ID_PATTERN);
    assert.equal(new Set(a.joins.map((j) => j.peerId)).size, 24, 'distinct ids');
    assert.equal(a.firstTier.length, 2, 'one first-tier peer per rendition');
    assert.ok(
      a.joins.slice(4).every((j) => j.neighbours.length > 0),
      'later peers are introduced to earlier ones',
    );
    assert.ok(a.pushes.some((p) => p.length > 0));
    const c = await scenario(2);
    assert.notDeepEqual(
      c.joins.map((j) => j.peerId),
      a.joins.map((j) => j.peerId),
      'another seed, other ids',
    );
  });

  test('neighbour pushes coalesce on the injected clock', async () => {
    const { clock, store, sessions } = core(7, { pushCoalesceMs: 20 });
    try {
      await store.putChannel('ch', channel(['180p']));
      const hs = [0, 1, 2, 3].map((i) => new Handle(`10.0.1.${i}`, clock));
      const ids: string[] = [];
      for (const h of hs) {
        const r = await sessions.join(sessions.open(h), {
          protocolVersion: TRACKER_PROTOCOL_VERSION,
          channel: 'ch',
          kind: 'node',
          mode: 'viewer',
          natType: 'unknown',
          uploadKbps: 1000,
        });
        ids.push(r.peerId);
      }
      await settle();
      assert.equal(hs[0]!.got.length, 0, 'nothing before the window ends');
      clock.advance(19);
      await settle();
      assert.equal(hs[0]!.got.length, 0, 'nothing at 19 ms either: no real timer got in');
      clock.advance(1);
      await settle();
      // The first peer was introduced to the three others (targetNeighbours 3): one message.
      const first = hs[0]!.got;
      assert.equal(first.length, 1);
      assert.equal(first[0]!.at, 20);
      assert.equal(first[0]!.event, 'neighbours');
      const update = first[0]!.payload as { add: string[]; remove: string[]; firstTier: boolean };
      assert.deepEqual([...update.add].sort(), ids.slice(1).sort());
      assert.deepEqual(update.remove, []);
      assert.equal(update.firstTier, true, 'the only first-tier peer (it joined first)');
    } finally {
      sessions.destroy();
    }
  });

  test('PushQueue on a manual clock: one message per peer per window, the latest word wins', () => {
    const clock = new ManualClock();
    const sent: [string, NeighbourChanges, number][] = [];
    const q = new PushQueue((id, changes) => sent.push([id, changes, clock.now()]), 50, clock);
    q.add('p', ['a', 'b'], []);
    clock.advance(10);
    q.add('p', [], ['a']);
    q.add('q', ['c'], []);
    clock.advance(39);
    assert.deepEqual(sent, []);
    clock.advance(1);
    assert.deepEqual(sent, [
      ['p', { add: ['b'], remove: ['a'] }, 50],
      ['q', { add: ['c'], remove: [] }, 50],
    ]);
    q.add('p', ['d'], []);
    q.destroy();
    clock.advance(100);
    assert.equal(sent.length, 2, 'nothing after destroy');
    assert.equal(clock.pendingTimers, 0, 'its timer was cleared');
  });

  test('defaults stay real; seeded ids have the real ids’ shape', () => {
    assert.ok(Math.abs(realTrackerClock.wallNow() - Date.now()) < 1000);
    assert.ok(realTrackerClock.now() <= performance.now());
    const rng = new Rng(3);
    const ids = Array.from({ length: 200 }, () => peerIdFrom(() => rng.next()));
    for (const id of ids) assert.match(id, PEER_ID_PATTERN);
    assert.equal(new Set(ids).size, 200);
    assert.match(
      peerIdFrom(() => 0.999999999),
      /^_{16}$/,
    );
  });

  test('the store samples and the policy picks from the injected generator', async () => {
    const picks = async (seed: number) => {
      const rng = new Rng(seed);
      const store = new MemoryTrackerStore({}, () => rng.next());
      for (let i = 0; i < 50; i++)
        await store.putPeer(peerRecord({ id: `p${String(i).padStart(15, '0')}`, ip: '10.0.0.1' }));
      const sample = (await store.samplePeers('ch', 5, () => true)).map((p) => p.id);
      const policy = new RandomPolicy({ firstTierPerRendition: 3 }, () => rng.next());
      const tier = [...(await policy.firstTier(await store.channelPeers('ch')))];
      return { sample, tier };
    };
    assert.deepEqual(await picks(5), await picks(5));
    assert.notDeepEqual(await picks(5), await picks(6));
  });
});
