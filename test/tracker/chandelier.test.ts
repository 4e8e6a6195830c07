/**
 * Chandelier's optimizer (tracker/chandelier.ts) on hand-built swarms with known answers, and its
 * invariants on random swarms.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectsDirectly, NAT_TYPES, type NatType } from '../../protocol/index.ts';
import { peerRecord } from '../helpers/peer-record.ts';
import {
  ChandelierPolicy,
  MemoryTrackerStore,
  planRendition,
  type ChandelierPeer,
  type ChandelierPlan,
  type PeerRecord,
} from '../../tracker/index.ts';

const BITRATE = 1000; // kbit/s
/** A peer of `streams` slots at the default utilisation (0.8). */
const peer = (id: string, streams: number, extra: Partial<ChandelierPeer> = {}): ChandelierPeer => ({
  id,
  natType: 'full-cone',
  uploadKbps: (streams * BITRATE) / 0.8 + 1,
  joinedAt: 0,
  ...extra,
});

/** The invariants every plan keeps. */
function checkPlan(peers: readonly ChandelierPeer[], plan: ChandelierPlan): void {
  const byId = new Map(peers.map((p) => [p.id, p]));
  const primaries = new Map<string, number>();
  for (const p of peers) {
    const parents = plan.parents.get(p.id);
    if (plan.firstTier.has(p.id)) {
      assert.equal(plan.level.get(p.id), 0, `${p.id}: the first tier is level 0`);
      assert.equal(parents, undefined, `${p.id}: the origin feeds it`);
      continue;
    }
    assert.ok(parents && parents.length > 0, `${p.id} has a supplier or the origin`);
    assert.equal(new Set(parents).size, parents.length, `${p.id}: parents distinct`);
    for (const q of parents) {
      assert.ok(connectsDirectly(p.natType, byId.get(q)!.natType), `${p.id} ← ${q}: NAT-compatible`);
      assert.ok(plan.level.get(q)! < plan.level.get(p.id)!, `${p.id} ← ${q}: from a level above`);
    }
    primaries.set(parents[0]!, (primaries.get(parents[0]!) ?? 0) + 1);
  }
  for (const [id, n] of primaries) {
    assert.ok(n <= plan.slots.get(id)!, `${id} feeds ${n} > its ${plan.slots.get(id)} slots`);
    assert.equal(plan.children.get(id), n);
  }
}

describe('Chandelier optimizer', () => {
  test('a chain of one-slot peers: the first tier is the smallest that keeps depth within the budget', () => {
    const peers = Array.from({ length: 10 }, (_, i) => peer(`p${i}`, 1, { joinedAt: i }));
    const plan = planRendition(peers, BITRATE, { maxDepth: 4, minFirstTier: 1 });
    checkPlan(peers, plan);
    // f peers per level, 4 levels below the first tier: f + 4f ≥ 10 → f = 2.
    assert.deepEqual([...plan.firstTier].sort(), ['p0', 'p1']);
    assert.equal(plan.depth, 4);
    // A deeper budget needs fewer origin copies; a budget of 0 puts everyone on the origin.
    assert.equal(planRendition(peers, BITRATE, { maxDepth: 9, minFirstTier: 1 }).firstTier.size, 1);
    assert.equal(planRendition(peers, BITRATE, { maxDepth: 0, minFirstTier: 1 }).firstTier.size, 10);
  });

  test('high-capacity peers hang near the source, peers below one stream at the tips', () => {
    const peers = [
      peer('weak1', 0),
      peer('weak2', 0),
      peer('weak3', 0),
      peer('strong', 4),
      peer('mid', 2),
      peer('weak4', 0),
    ];
    const plan = planRendition(peers, BITRATE, { minFirstTier: 1 });
    checkPlan(peers, plan);
    assert.deepEqual([...plan.firstTier], ['strong'], 'one origin copy is enough');
    assert.equal(plan.level.get('mid'), 1);
    for (const w of ['weak1', 'weak2', 'weak3', 'weak4']) assert.ok(plan.level.get(w)! >= 1);
    assert.equal(plan.children.get('strong'), 4, 'strong feeds four');
    assert.equal(plan.children.get('mid'), 1);
    assert.equal(plan.children.get('weak1') ?? 0, 0, 'a peer below one stream feeds nobody');
  });

  test('not enough upload in the swarm: the origin feeds whoever no slot can', () => {
    const peers = Array.from({ length: 6 }, (_, i) => peer(`w${i}`, 0));
    const plan = planRendition(peers, BITRATE, { minFirstTier: 1 });
    checkPlan(peers, plan);
    assert.equal(plan.firstTier.size, 6);
  });

  test('a NAT-incompatible pair is never matched directly: the origin feeds the other side', () => {
    const peers = [
      peer('sym-parent', 4, { natType: 'symmetric' }),
      peer('sym-child', 0, { natType: 'symmetric' }),
      peer('cone-child', 0, { natType: 'port-restricted-cone' }),
      peer('open-child', 0, { natType: 'open' }),
    ];
    const plan = planRendition(peers, BITRATE, { minFirstTier: 1 });
    checkPlan(peers, plan);
    assert.deepEqual([...plan.firstTier].sort(), ['cone-child', 'sym-child', 'sym-parent']);
    assert.deepEqual(plan.parents.get('open-child'), ['sym-parent']);
  });

  test('a peer that leaves: its children find new parents, everyone else keeps theirs', () => {
    const peers = Array.from({ length: 40 }, (_, i) => peer(`p${i}`, 1 + (i % 3), { joinedAt: i }));
    const before = planRendition(peers, BITRATE);
    checkPlan(peers, before);
    const gone = [...before.children].find(([id, n]) => n > 0 && !before.firstTier.has(id))![0];
    const orphans = new Set([...before.parents].filter(([, ps]) => ps[0] === gone).map(([id]) => id));
    const after = peers
      .filter((p) => p.id !== gone)
      .map((p) => ({ ...p, parent: before.parents.get(p.id)?.[0] }));
    const plan = planRendition(after, BITRATE);
    checkPlan(after, plan);
    let kept = 0;
    for (const p of after) {
      const now = plan.parents.get(p.id)?.[0];
      if (orphans.has(p.id)) assert.notEqual(now, gone);
      else if (p.parent !== undefined && now === p.parent) kept++;
    }
    assert.equal(plan.kept, kept);
    const hadParent = after.filter((p) => p.parent !== undefined && !orphans.has(p.id)).length;
    assert.ok(kept >= hadParent * 0.8, `${kept} of ${hadParent} kept their parent`);
  });

  test('stability: a valid primary is kept even when a newcomer ranks first; valid backups are kept', () => {
    // Two suppliers of 2 slots each, three children: the plan fills a's slots first.
    const old = [peer('a', 2, { joinedAt: 0 }), peer('b', 2, { joinedAt: 1 })];
    const kids = ['x', 'y', 'z'].map((id, i) => peer(id, 0, { joinedAt: 10 + i }));
    const first = planRendition([...old, ...kids], BITRATE, { minFirstTier: 2 });
    const primaries = new Map(kids.map((k) => [k.id, first.parents.get(k.id)![0]!]));
    // Next round: a newcomer child that ranks before them (older), and every child says what it had.
    const again = [
      ...old,
      peer('w', 0, { joinedAt: 5 }),
      ...kids.map((k) => ({ ...k, parent: primaries.get(k.id), backups: first.parents.get(k.id)!.slice(1) })),
    ];
    const plan = planRendition(again, BITRATE, { minFirstTier: 2 });
    checkPlan(again, plan);
    for (const k of kids) {
      assert.equal(plan.parents.get(k.id)![0], primaries.get(k.id), `${k.id} keeps its primary`);
      assert.deepEqual(
        plan.parents.get(k.id)!.slice(1),
        first.parents.get(k.id)!.slice(1),
        `${k.id} keeps its backups`,
      );
    }
    assert.equal(plan.kept, 3);
    assert.ok(plan.parents.get('w'), 'the newcomer takes the free slot');
  });

  test('random swarms: no supplier over its slots, a supplier or the origin for all, no incompatible pair', () => {
    let seed = 42;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 30; round++) {
      const n = 1 + Math.floor(rnd() * 300);
      const peers = Array.from({ length: n }, (_, i) =>
        peer(`p${i}`, Math.floor(rnd() * 6), {
          natType: NAT_TYPES[Math.floor(rnd() * NAT_TYPES.length)] as NatType,
          joinedAt: Math.floor(rnd() * 1000),
          ...(rnd() < 0.1 && { uploadKbps: 0 }),
        }),
      );
      const plan = planRendition(peers, BITRATE, { maxDepth: 1 + Math.floor(rnd() * 5) });
      checkPlan(peers, plan);
      assert.equal(plan.level.size, n, 'every peer placed');
    }
  });
});

describe('ChandelierPolicy', () => {
  const record = (id: string, uploadKbps: number, natType: NatType = 'full-cone'): PeerRecord =>
    peerRecord({ id, channel: 'live', rendition: '480p', natType, uploadKbps });

  test('plans in rounds; between rounds a joiner hangs under a planned peer with a free slot', async () => {
    let now = 0;
    const store = new MemoryTrackerStore({}, () => 0.5);
    const ctx = { store, maxNeighbours: 12 };
    // A 1 Mbit/s stream (no registration in the store: the default bitrate stands in).
    const peers = [record('big', 8000), record('small', 100)];
    for (const p of peers) await store.putPeer(p);
    const p2 = new ChandelierPolicy(
      { defaultBitrateKbps: 1000, minFirstTier: 1, roundMs: 5000 },
      { now: () => now, random: () => 0.5 },
    );
    assert.deepEqual([...(await p2.firstTier(peers, ctx))], ['big']);
    assert.deepEqual(p2.wantedLinks('live', 'small'), ['big']);
    // A joiner between rounds: the plan is not redone, the joiner gets big's free slot.
    now = 1000;
    const joiner = record('joiner', 0);
    await store.putPeer(joiner);
    const given = await p2.neighboursFor(joiner, [], 4, ctx);
    assert.equal(given[0], 'big', 'its parent first');
    const round = p2.lastRound;
    assert.deepEqual([...(await p2.firstTier([...peers, joiner], ctx))], ['big']);
    assert.equal(p2.lastRound, round, 'no new plan between rounds');
    // The first tier leaves: replanned at once, whatever the time.
    await store.deletePeer('big');
    const tier = await p2.firstTier([peers[1]!, joiner], ctx);
    // The joiner's capacity is not known yet (2 slots assumed); small's 100 kbit/s carries no stream.
    assert.deepEqual([...tier], ['joiner']);
    assert.deepEqual(p2.wantedLinks('live', 'small'), ['joiner']);
    assert.notEqual(p2.lastRound, round);
    assert.equal(p2.name, 'chandelier');
  });

  test('a capacity that wanders within 30 % does not move a peer; a larger change does', async () => {
    let now = 0;
    const store = new MemoryTrackerStore({}, () => 0.5);
    const ctx = { store, maxNeighbours: 12 };
    const policy = new ChandelierPolicy(
      { defaultBitrateKbps: 1000, minFirstTier: 1, roundMs: 5000 },
      { now: () => now, random: () => 0.5 },
    );
    // big feeds 3 (4 000 kbit/s × 0.8 = 3 streams); mid feeds 1 (1 300 × 0.8).
    const big = record('big', 4000);
    const mid = record('mid', 1300);
    // Children below one stream (no slots).
    const kids = ['k1', 'k2', 'k3'].map((id) => record(id, 100));
    const all = [big, mid, ...kids];
    for (const p of all) await store.putPeer(p);
    assert.deepEqual([...(await policy.firstTier(all, ctx))], ['big']);
    const before = new Map(all.map((p) => [p.id, policy.wantedLinks('live', p.id).join(',')]));
    // mid measures 1 600 kbit/s, big 3 200: within 30 %, the plan stands as it was.
    mid.uploadKbps = 1600;
    big.uploadKbps = 3200;
    now += 5000;
    assert.deepEqual([...(await policy.firstTier(all, ctx))], ['big']);
    for (const p of all) assert.equal(policy.wantedLinks('live', p.id).join(','), before.get(p.id), p.id);
    // mid measures 8 000 kbit/s (far more than 30 % up): it now ranks first and feeds from the origin.
    mid.uploadKbps = 8000;
    now += 5000;
    assert.deepEqual([...(await policy.firstTier(all, ctx))], ['mid']);
  });

  test('a channel left without peers loses its plan after 12 rounds; a live one keeps its own', async () => {
    let now = 0;
    const store = new MemoryTrackerStore({}, () => 0.5);
    const policy = new ChandelierPolicy({ minFirstTier: 1, roundMs: 5000 }, { now: () => now });
    const ctx = { store, maxNeighbours: 12 };
    const a = [record('a1', 8000), record('a2', 100)];
    const b = [record('b1', 8000), record('b2', 100)].map((p) => ({ ...p, channel: 'other' }));
    await policy.firstTier(a, ctx);
    assert.deepEqual(policy.wantedLinks('live', 'a2'), ['a1']);
    now = 12 * 5000;
    await policy.firstTier(b, ctx);
    assert.deepEqual(policy.wantedLinks('live', 'a2'), ['a1'], 'within 12 rounds: kept');
    now = 13 * 5000 + 1;
    await policy.firstTier(b, ctx);
    assert.deepEqual(policy.wantedLinks('live', 'a2'), [], 'dropped');
    assert.deepEqual(policy.wantedLinks('other', 'b2'), ['b1']);
  });
});
