import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  KeyedBuckets,
  MemoryTrackerStore,
  RandomPolicy,
  StatsKeeper,
  TokenBucket,
  offloadOver,
  uploadRateOver,
  type OverlayPolicy,
  type PeerRecord,
  type PolicyContext,
} from '../../tracker/index.ts';
import type { ChannelStatsSample, PeerReport } from '../../protocol/index.ts';
import { emptyReport } from '../helpers/tracker-clients.ts';
import { channelRecord } from '../helpers/channel-record.ts';
import { newPeerId as newId, peerRecord as peer } from '../helpers/peer-record.ts';
import { Rng } from '../../sim/index.ts';

// ---------------------------------------------------------------- fixtures

const report = (over: Partial<PeerReport> = {}): PeerReport =>
  emptyReport({ bufferS: 4, downloadKbps: 200, ...over });

/** Seeded uniform [0, 1): the simulator's generator, so a run is the same every time. */
const prng = (seed: number): (() => number) => {
  const rng = new Rng(seed);
  return () => rng.next();
};

async function storeWith(peers: PeerRecord[]): Promise<MemoryTrackerStore> {
  const store = new MemoryTrackerStore();
  for (const p of peers) await store.putPeer(p);
  return store;
}

const ids = (ps: readonly { id: string }[]): string[] => ps.map((p) => p.id).sort();

// ---------------------------------------------------------------- RandomPolicy

describe('RandomPolicy.neighboursFor', () => {
  test('only peers of the same channel and rendition, never itself or existing links, at most `want`', async () => {
    const me = peer();
    const same = Array.from({ length: 10 }, () => peer());
    const otherRendition = Array.from({ length: 10 }, () => peer({ rendition: '90p' }));
    const otherChannel = Array.from({ length: 10 }, () => peer({ channel: 'other' }));
    const store = await storeWith([me, ...same, ...otherRendition, ...otherChannel]);
    const ctx: PolicyContext = { store, maxNeighbours: 12 };
    const policy = new RandomPolicy();
    const current = [same[0]!.id, same[1]!.id];
    const allowed = new Set(same.slice(2).map((p) => p.id));
    for (let i = 0; i < 50; i++) {
      const got = await policy.neighboursFor(me, current, 6, ctx);
      assert.equal(got.length, 6, 'enough candidates: exactly `want`');
      assert.equal(new Set(got).size, got.length, 'distinct');
      for (const id of got) assert.ok(allowed.has(id), `${id} is an allowed candidate`);
    }
    // Asking for more than there is gives every allowed candidate once.
    const all = await policy.neighboursFor(me, current, 20, ctx);
    assert.deepEqual(all.sort(), [...allowed].sort());
  });

  test('nothing when want <= 0 or when alone', async () => {
    const me = peer();
    const store = await storeWith([me, peer(), peer()]);
    const ctx: PolicyContext = { store, maxNeighbours: 12 };
    const policy = new RandomPolicy();
    assert.deepEqual(await policy.neighboursFor(me, [], 0, ctx), []);
    assert.deepEqual(await policy.neighboursFor(me, [], -3, ctx), []);
    const lonely = peer({ channel: 'empty' });
    await store.putPeer(lonely);
    assert.deepEqual(await policy.neighboursFor(lonely, [], 6, ctx), []);
  });

  test('candidates at the maxNeighbours cap are skipped; one below the cap is taken', async () => {
    const me = peer();
    const capped = Array.from({ length: 3 }, () => peer());
    const below = peer();
    const free = peer();
    const store = await storeWith([me, ...capped, below, free]);
    // maxNeighbours 2: capped peers have 2 links, `below` has 1.
    for (const c of capped) {
      await store.addLink(c.id, newId());
      await store.addLink(c.id, newId());
    }
    await store.addLink(below.id, newId());
    const policy = new RandomPolicy();
    for (let i = 0; i < 20; i++) {
      const got = await policy.neighboursFor(me, [], 6, { store, maxNeighbours: 2 });
      assert.deepEqual(got.sort(), [below.id, free.id].sort());
    }
  });

  test('finds the free candidate even when most same-rendition peers are at the cap', async () => {
    // 60 peers at the cap (maxNeighbours 1) and a single one with room: it is the only valid answer.
    const me = peer();
    const capped = Array.from({ length: 60 }, () => peer());
    const free = peer();
    const store = await storeWith([me, ...capped, free]);
    for (const c of capped) await store.addLink(c.id, newId());
    const policy = new RandomPolicy();
    for (let i = 0; i < 10; i++)
      assert.deepEqual(await policy.neighboursFor(me, [], 2, { store, maxNeighbours: 1 }), [free.id]);
  });
});

describe('RandomPolicy.firstTier', () => {
  test('rejects a non-positive or fractional firstTierPerRendition', () => {
    assert.throws(() => new RandomPolicy({ firstTierPerRendition: 0 }), RangeError);
    assert.throws(() => new RandomPolicy({ firstTierPerRendition: 1.5 }), RangeError);
    assert.doesNotThrow(() => new RandomPolicy({ firstTierPerRendition: 3 }));
  });

  test('exactly firstTierPerRendition per rendition (all of them when fewer), stable across calls', async () => {
    const policy: OverlayPolicy = new RandomPolicy({ firstTierPerRendition: 2 });
    const a = Array.from({ length: 6 }, () => peer({ rendition: 'a' }));
    const b = Array.from({ length: 3 }, () => peer({ rendition: 'b' }));
    const c = [peer({ rendition: 'c' })];
    const all = [...a, ...b, ...c];
    const store = await storeWith(all);
    const ctx: PolicyContext = { store, maxNeighbours: 12 };
    const count = (tier: Set<string>, list: PeerRecord[]) => list.filter((p) => tier.has(p.id)).length;

    const tier = await policy.firstTier(all, ctx);
    assert.equal(count(tier, a), 2);
    assert.equal(count(tier, b), 2);
    assert.equal(count(tier, c), 1);
    assert.equal(tier.size, 5);
    // The tracker stores the flag; later calls keep the same peers while they stay.
    for (const p of all) p.firstTier = tier.has(p.id);
    for (let i = 0; i < 20; i++)
      assert.deepEqual([...(await policy.firstTier(all, ctx))].sort(), [...tier].sort());

    // One first-tier peer of `a` leaves: the other stays, one newcomer fills the slot.
    const gone = a.find((p) => p.firstTier)!;
    const stay = a.find((p) => p.firstTier && p !== gone)!;
    const rest = all.filter((p) => p !== gone);
    const next = await policy.firstTier(rest, ctx);
    assert.ok(next.has(stay.id), 'the remaining first-tier peer keeps its place');
    assert.ok(!next.has(gone.id));
    assert.equal(count(next, a), 2);
    for (const p of b) assert.equal(next.has(p.id), p.firstTier, 'rendition b is untouched');
  });

  test('never more than firstTierPerRendition even if more peers carry the flag', async () => {
    const policy: OverlayPolicy = new RandomPolicy({ firstTierPerRendition: 1 });
    const list = Array.from({ length: 4 }, () => peer({ firstTier: true }));
    const tier = await policy.firstTier(list, { store: await storeWith(list), maxNeighbours: 12 });
    assert.equal(tier.size, 1);
    assert.ok(tier.has(list[0]!.id));
    assert.equal(
      (await policy.firstTier([], { store: new MemoryTrackerStore(), maxNeighbours: 12 })).size,
      0,
    );
  });
});

// ---------------------------------------------------------------- MemoryTrackerStore

describe('MemoryTrackerStore', () => {
  test('put, get, delete and count peers', async () => {
    const store = new MemoryTrackerStore();
    const p = peer();
    const q = peer({ channel: 'other' });
    await store.putPeer(p);
    await store.putPeer(q);
    await store.putPeer(p); // again: no duplicate in the channel index
    assert.equal(await store.getPeer(p.id), p);
    assert.equal(await store.countPeers(), 2);
    assert.equal(await store.countPeers('ch'), 1);
    assert.equal(await store.countPeers('nope'), 0);
    assert.deepEqual(ids(await store.channelPeers('ch')), [p.id]);
    assert.equal(await store.deletePeer(p.id), p);
    assert.equal(await store.getPeer(p.id), undefined);
    assert.equal(await store.deletePeer(p.id), undefined, 'deleting twice');
    assert.equal(await store.countPeers('ch'), 0);
    assert.deepEqual(await store.channelPeers('ch'), []);
    assert.equal(await store.countPeers(), 1);
  });

  test('updatePeer writes only a peer that is still there (a late handler cannot resurrect it)', async () => {
    const store = new MemoryTrackerStore();
    const p = peer();
    assert.equal(await store.updatePeer(p), false, 'never stored');
    assert.equal(await store.countPeers(), 0);
    await store.putPeer(p);
    assert.equal(await store.updatePeer({ ...p, uploadKbps: 123 }), true);
    assert.equal((await store.getPeer(p.id))?.uploadKbps, 123);
    await store.deletePeer(p.id);
    assert.equal(await store.updatePeer({ ...p, lastSeenAt: p.lastSeenAt + 1 }), false, 'deleted');
    assert.equal(await store.getPeer(p.id), undefined);
    assert.equal(await store.countPeers('ch'), 0);
  });

  test('a peer that moves to another channel is re-indexed', async () => {
    const store = new MemoryTrackerStore();
    const p = peer();
    const stay = peer();
    await store.putPeer(p);
    await store.putPeer(stay);
    await store.putPeer({ ...p, channel: 'other' });
    assert.deepEqual(ids(await store.channelPeers('ch')), [stay.id]);
    assert.deepEqual(ids(await store.channelPeers('other')), [p.id]);
    assert.equal(await store.countPeers(), 2);
  });

  test('the per-channel index stays consistent after many random puts and deletes', async () => {
    const rnd = prng(42);
    const store = new MemoryTrackerStore();
    const model = new Map<string, Set<string>>([
      ['a', new Set()],
      ['b', new Set()],
      ['c', new Set()],
    ]);
    const live: PeerRecord[] = [];
    const channels = ['a', 'b', 'c'];
    const check = async () => {
      let total = 0;
      for (const [ch, set] of model) {
        const got = (await store.channelPeers(ch)).map((p) => p.id);
        assert.equal(new Set(got).size, got.length, `no duplicate in ${ch}`);
        assert.deepEqual(got.sort(), [...set].sort(), `channel ${ch}`);
        assert.equal(await store.countPeers(ch), set.size);
        total += set.size;
      }
      assert.equal(await store.countPeers(), total);
    };
    for (let step = 0; step < 1500; step++) {
      if (live.length === 0 || rnd() < 0.55) {
        const p = peer({ channel: channels[Math.floor(rnd() * 3)]! });
        await store.putPeer(p);
        live.push(p);
        model.get(p.channel)!.add(p.id);
      } else {
        const [p] = live.splice(Math.floor(rnd() * live.length), 1);
        assert.equal((await store.deletePeer(p!.id))?.id, p!.id);
        model.get(p!.channel)!.delete(p!.id);
      }
      if (step % 50 === 0) await check();
    }
    // Delete everything left in random order, checking as we go.
    while (live.length > 0) {
      const [p] = live.splice(Math.floor(rnd() * live.length), 1);
      await store.deletePeer(p!.id);
      model.get(p!.channel)!.delete(p!.id);
      if (live.length % 10 === 0) await check();
    }
    await check();
    assert.deepEqual(await store.samplePeers('a', 5, () => true), []);
  });

  test('samplePeers: distinct, accepted, of that channel, at most n (all accepted ones when fewer)', async () => {
    const even = Array.from({ length: 40 }, (_, i) => peer({ uploadKbps: i }));
    const store = await storeWith([...even, ...Array.from({ length: 10 }, () => peer({ channel: 'x' }))]);
    const accept = (p: PeerRecord) => p.channel === 'ch' && p.uploadKbps % 2 === 0;
    const acceptable = new Set(even.filter(accept).map((p) => p.id));
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const got = await store.samplePeers('ch', 7, accept);
      assert.equal(got.length, 7);
      assert.equal(new Set(got.map((p) => p.id)).size, 7, 'distinct');
      for (const p of got) {
        assert.ok(acceptable.has(p.id), 'accepted and in the channel');
        seen.add(p.id);
      }
    }
    assert.equal(seen.size, acceptable.size, 'over many samples every acceptable peer shows up');
    assert.deepEqual(ids(await store.samplePeers('ch', 100, accept)), [...acceptable].sort());
    assert.deepEqual(await store.samplePeers('ch', 0, accept), []);
    assert.deepEqual(await store.samplePeers('ch', 5, () => false), []);
    assert.deepEqual(await store.samplePeers('nope', 5, () => true), []);
  });

  test('links are symmetric; dropLinks returns the partners and removes both directions', async () => {
    const store = new MemoryTrackerStore();
    const [a, b, c, d] = [newId(), newId(), newId(), newId()];
    await store.addLink(a, b);
    await store.addLink(a, c);
    await store.addLink(c, b);
    await store.addLink(a, b); // again: no duplicate
    await store.addLink(d, d); // self links are ignored
    assert.ok(await store.hasLink(a, b));
    assert.ok(await store.hasLink(b, a));
    assert.ok(!(await store.hasLink(d, d)));
    assert.deepEqual(await store.linksOf(d), []);
    assert.deepEqual((await store.linksOf(a)).sort(), [b, c].sort());
    assert.deepEqual((await store.linksOf(b)).sort(), [a, c].sort());

    await store.removeLink(b, c);
    assert.ok(!(await store.hasLink(c, b)));
    assert.deepEqual(await store.linksOf(c), [a]);

    assert.deepEqual((await store.dropLinks(a)).sort(), [b, c].sort());
    assert.deepEqual(await store.linksOf(a), []);
    assert.deepEqual(await store.linksOf(b), []);
    assert.deepEqual(await store.linksOf(c), []);
    assert.ok(!(await store.hasLink(b, a)));
    assert.deepEqual(await store.dropLinks(a), [], 'nothing left to drop');
    assert.deepEqual(await store.dropLinks(newId()), []);
  });

  test('departed totals add up per channel and are returned as copies', async () => {
    const store = new MemoryTrackerStore();
    assert.deepEqual(await store.departed('ch'), { httpBytes: 0, p2pBytes: 0, uploadedBytes: 0 });
    await store.addDeparted('ch', { httpBytes: 10, p2pBytes: 20, uploadedBytes: 30 });
    await store.addDeparted('ch', { httpBytes: 1, p2pBytes: 2, uploadedBytes: 3 });
    await store.addDeparted('other', { httpBytes: 100, p2pBytes: 0, uploadedBytes: 0 });
    const d = await store.departed('ch');
    assert.deepEqual(d, { httpBytes: 11, p2pBytes: 22, uploadedBytes: 33 });
    d.httpBytes = 999;
    assert.equal((await store.departed('ch')).httpBytes, 11, 'mutating the result changes nothing');
    assert.deepEqual(await store.departed('other'), { httpBytes: 100, p2pBytes: 0, uploadedBytes: 0 });
  });

  test('channels: put, get, list', async () => {
    const store = new MemoryTrackerStore();
    assert.equal(await store.getChannel('ch'), undefined);
    const rec = channelRecord();
    await store.putChannel('ch', rec);
    await store.putChannel('two', channelRecord());
    assert.equal(await store.getChannel('ch'), rec);
    assert.deepEqual((await store.listChannels()).map(([id]) => id).sort(), ['ch', 'two']);
  });
});

// ---------------------------------------------------------------- rate limits

describe('TokenBucket with an injected clock', () => {
  test('starts full, refuses when empty, refills at the rate, never above the burst', () => {
    let t = 1_000_000;
    const b = new TokenBucket(10, 5, () => t);
    for (let i = 0; i < 5; i++) assert.ok(b.take(), `token ${i}`);
    assert.ok(!b.take(), 'burst exhausted');
    assert.ok(!b.take(), 'a refused take costs nothing and still refuses');
    t += 99;
    assert.ok(!b.take(), '0.99 tokens is not enough');
    t += 1;
    assert.ok(b.take(), '100 ms at 10/s gives one token');
    assert.ok(!b.take());
    t += 60_000; // long idle: back to the burst, not 600 tokens
    let n = 0;
    while (b.take()) n++;
    assert.equal(n, 5);
  });

  test('take(cost) needs that many tokens', () => {
    let t = 0;
    const b = new TokenBucket(1, 4, () => t);
    assert.ok(b.take(3));
    assert.ok(!b.take(2), 'one token left');
    assert.ok(b.take(1));
    t += 2000;
    assert.ok(b.take(2));
    assert.ok(!b.take(1));
  });

  test('a clock that steps backwards does not drain the bucket', () => {
    let t = 10_000_000;
    const b = new TokenBucket(20, 60, () => t);
    t -= 3_600_000; // NTP steps the clock back one hour
    assert.ok(b.take(), 'the bucket was full: a take must succeed');
  });
});

describe('KeyedBuckets (injected clock)', () => {
  let t = 0;
  const clock = () => t;

  test('one bucket per key, refilling with time', () => {
    t = 1_000_000;
    const k = new KeyedBuckets(2, 3, clock);
    for (let i = 0; i < 3; i++) assert.ok(k.take('1.1.1.1'));
    assert.ok(!k.take('1.1.1.1'));
    assert.ok(k.take('2.2.2.2'), 'another key has its own bucket');
    t += 499;
    assert.ok(!k.take('1.1.1.1'));
    t += 1;
    assert.ok(k.take('1.1.1.1'), '500 ms at 2/s gives one token');
    assert.ok(!k.take('1.1.1.1'));
  });

  test('sweep forgets idle buckets but keeps the state of busy ones', () => {
    t = 5_000_000;
    const k = new KeyedBuckets(1, 4, clock); // refills fully in 4 s
    for (let i = 0; i < 4; i++) assert.ok(k.take('busy'));
    for (let i = 0; i < 4; i++) assert.ok(k.take('idle'));
    t += 3000;
    assert.ok(k.take('busy'), '3 tokens back after 3 s; one taken, 2 left');
    t += 1500; // idle: last seen 4.5 s ago (> 4 s refill time); busy: 1.5 s ago
    k.sweep();
    let n = 0;
    while (k.take('busy')) n++;
    assert.equal(n, 3, 'busy keeps its state through sweep (2 + 1.5 tokens), not a fresh bucket of 4');
    n = 0;
    while (k.take('idle')) n++;
    assert.equal(n, 4, 'an idle key starts full again');
  });
});

// ---------------------------------------------------------------- offload

type Totals = Pick<ChannelStatsSample, 'at' | 'httpBytes' | 'p2pBytes' | 'originSegmentBytes'>;
const sample = (s: Totals): ChannelStatsSample => ({
  viewers: 0,
  uploadedBytes: 0,
  offload: null,
  downloadKbps: 0,
  uploadKbps: 0,
  ...s,
});

describe('offloadOver', () => {
  test('null when nothing was consumed', () => {
    assert.equal(
      offloadOver([], sample({ at: 0, httpBytes: 0, p2pBytes: 0, originSegmentBytes: 0 }), 30_000),
      null,
    );
    const h = [sample({ at: 0, httpBytes: 500, p2pBytes: 500, originSegmentBytes: 100 })];
    const now = sample({ at: 40_000, httpBytes: 500, p2pBytes: 500, originSegmentBytes: 300 });
    assert.equal(offloadOver(h, now, 30_000), null, 'no consumption within the window');
  });

  test('origin-based: 1 - origin bytes / consumed bytes', () => {
    const now = sample({ at: 1000, httpBytes: 1000, p2pBytes: 3000, originSegmentBytes: 1000 });
    assert.equal(offloadOver([], now, 30_000), 0.75);
    // The origin sent less than the peers fetched over HTTP (caches): the origin counters win.
    const cached = sample({ at: 1000, httpBytes: 3000, p2pBytes: 1000, originSegmentBytes: 400 });
    assert.equal(offloadOver([], cached, 30_000), 0.9);
  });

  test('peer-based fallback without origin counters (now or at the baseline)', () => {
    const now = sample({ at: 1000, httpBytes: 1000, p2pBytes: 3000, originSegmentBytes: null });
    assert.equal(offloadOver([], now, 30_000), 0.75);
    const h = [sample({ at: 0, httpBytes: 1000, p2pBytes: 0, originSegmentBytes: null })];
    const later = sample({ at: 40_000, httpBytes: 2000, p2pBytes: 4000, originSegmentBytes: 5000 });
    assert.equal(offloadOver(h, later, 30_000), 0.8, 'baseline had no origin counters: (4000) / (5000)');
  });

  test('baseline: the newest sample at least a window old', () => {
    const h = [
      sample({ at: 0, httpBytes: 0, p2pBytes: 0, originSegmentBytes: 0 }),
      sample({ at: 10_000, httpBytes: 1000, p2pBytes: 0, originSegmentBytes: 1000 }),
      sample({ at: 20_000, httpBytes: 1500, p2pBytes: 500, originSegmentBytes: 1500 }),
      sample({ at: 35_000, httpBytes: 1800, p2pBytes: 2000, originSegmentBytes: 1800 }),
    ];
    const now = sample({ at: 40_000, httpBytes: 2000, p2pBytes: 3000, originSegmentBytes: 2000 });
    // base = the sample at 10 s (exactly one window old): consumed 4000, origin 1000.
    assert.equal(offloadOver(h, now, 30_000), 0.75);
    // A shorter window moves the baseline to the sample at 35 s: consumed 1200, origin 200.
    assert.equal(offloadOver(h, now, 5000), 1 - 200 / 1200);
    // History younger than the window: counted from zero.
    assert.equal(offloadOver(h, now, 60_000), 1 - 2000 / 5000);
  });

  test('clamped to [0, 1]', () => {
    const more = sample({ at: 1, httpBytes: 100, p2pBytes: 0, originSegmentBytes: 1000 });
    assert.equal(
      offloadOver([], more, 30_000),
      0,
      'origin sent more than peers consumed (plain HLS players)',
    );
    const h = [sample({ at: 0, httpBytes: 0, p2pBytes: 0, originSegmentBytes: 500 })];
    const back = sample({ at: 40_000, httpBytes: 100, p2pBytes: 100, originSegmentBytes: 100 });
    assert.equal(offloadOver(h, back, 30_000), 1, 'origin counter went back');
  });
});

describe('uploadRateOver', () => {
  const at = (t: number, uploadedBytes: number): ChannelStatsSample => ({
    ...sample({ at: t, httpBytes: 0, p2pBytes: 0, originSegmentBytes: null }),
    uploadedBytes,
  });
  test('growth of the uploaded bytes since the newest sample at least a window old', () => {
    const h = [at(0, 0), at(2000, 1000), at(4000, 5000), at(8000, 9000)];
    // Window 5 s: base = the sample at 4 s; 6000 B in 6 s = 8 kbit/s.
    assert.equal(uploadRateOver(h, at(10_000, 11_000), 5000), 8);
    // Younger history than the window: from the oldest sample.
    assert.equal(uploadRateOver(h, at(10_000, 11_000), 60_000), Math.round((11_000 * 8) / 10_000));
  });
  test('0 without an earlier sample, never negative', () => {
    assert.equal(uploadRateOver([], at(1000, 5000), 10_000), 0);
    assert.equal(uploadRateOver([at(0, 5000)], at(1000, 100), 10_000), 0);
  });
});

// ---------------------------------------------------------------- StatsKeeper

describe('StatsKeeper', () => {
  test('sums peers and departed bytes, counts viewers, derives origin bytes from the baseline', async () => {
    const store = new MemoryTrackerStore();
    await store.putChannel(
      'ch',
      channelRecord({
        origin: { segmentBytes: 5000, playlistBytes: 0, attestationBytes: 0, segmentRequests: 3 },
        originBase: 4000,
      }),
    );
    await store.putChannel('quiet', channelRecord());
    const uploader = peer({
      report: report({
        httpBytes: 1000,
        p2pBytes: 500,
        uploadedBytes: 1000,
        downloadKbps: 10,
        uploadKbps: 1,
      }),
    });
    await store.putPeer(uploader);
    await store.putPeer(
      peer({ mode: 'relay', report: report({ httpBytes: 200, p2pBytes: 0, downloadKbps: 5 }) }),
    );
    await store.putPeer(peer()); // no report yet
    await store.addDeparted('ch', { httpBytes: 300, p2pBytes: 2500, uploadedBytes: 500 });
    const stats = new StatsKeeper(store, {
      historyLength: 3,
      offloadWindowMs: 30_000,
      rateWindowMs: 2000,
      maxSnapshotPeers: 300,
    });
    assert.equal(stats.current('ch'), undefined);
    await stats.sample(1000);
    const s = stats.current('ch')!;
    assert.deepEqual(
      { ...s },
      {
        at: 1000,
        viewers: 2,
        httpBytes: 1500,
        p2pBytes: 3000,
        uploadedBytes: 1500,
        originSegmentBytes: 1000,
        offload: 1 - 1000 / 4500,
        downloadKbps: 15,
        uploadKbps: 0,
      },
      'upload traffic needs an earlier sample (the declared capacities, 1 and 1000, are not traffic)',
    );
    const q = stats.current('quiet')!;
    assert.equal(q.originSegmentBytes, null);
    assert.equal(q.offload, null);
    assert.equal(q.viewers, 0);

    // Uploaded bytes grow by 1000 B/s: 8 kbit/s of upload traffic, over the rate window.
    for (let i = 2; i <= 5; i++) {
      await store.updatePeer({ ...uploader, report: { ...uploader.report!, uploadedBytes: 1000 * i } });
      await stats.sample(i * 1000);
      assert.equal(stats.current('ch')!.uploadKbps, 8, `sample ${i}`);
    }
    const h = stats.history('ch');
    assert.deepEqual(
      h.map((x) => x.at),
      [3000, 4000, 5000],
      'history keeps the newest historyLength samples',
    );
    h.pop();
    assert.equal(stats.history('ch').length, 3, 'history() returns a copy');
    stats.forget('ch');
    assert.equal(stats.current('ch'), undefined);
  });

  test("overlay: flows from each peer's flowsIn (non-zero only), links once, first tier first", async () => {
    const store = new MemoryTrackerStore();
    await store.putChannel('ch', channelRecord());
    const a = peer();
    const b = peer();
    const c = peer({ firstTier: true });
    for (const p of [a, b, c]) await store.putPeer(p);
    await store.addLink(a.id, b.id);
    await store.addLink(b.id, c.id);
    await store.addLink(c.id, a.id);
    const stats = new StatsKeeper(store);
    const flows = async () =>
      (await stats.overlay('ch')).flows.map((f) => `${f.from}>${f.to}:${f.bytes}`).sort();
    assert.deepEqual(await flows(), [], 'no report yet');

    b.flowsIn = { [c.id]: 500, [a.id]: 0 };
    a.flowsIn = { [c.id]: 100, [b.id]: 50 };
    assert.deepEqual(
      await flows(),
      [`${c.id}>${b.id}:500`, `${c.id}>${a.id}:100`, `${b.id}>${a.id}:50`].sort(),
    );
    // A sender that is not in the channel (left, or made up by the reporting peer) is not drawn.
    b.flowsIn = { [newId()]: 999, [c.id]: 1 };
    a.flowsIn = {};
    assert.deepEqual(await flows(), [`${c.id}>${b.id}:1`]);

    const overlay = await stats.overlay('ch', 42);
    assert.equal(overlay.at, 42);
    assert.equal(overlay.channel, 'ch');
    assert.equal(overlay.totalPeers, 3);
    assert.equal(overlay.peers[0]!.id, c.id, 'first tier first');
    assert.deepEqual(
      overlay.links.map((l) => [...l].sort().join('-')).sort(),
      [[a.id, b.id].sort().join('-'), [b.id, c.id].sort().join('-'), [a.id, c.id].sort().join('-')].sort(),
      'each undirected link once',
    );
    for (const [x, y] of overlay.links) assert.ok(x < y);
    const empty = await stats.overlay('nope');
    assert.deepEqual([empty.peers, empty.links, empty.flows, empty.totalPeers], [[], [], [], 0]);
  });

  test('overlay snapshots are capped, keep first-tier peers and only links and flows among shown peers', async () => {
    const store = new MemoryTrackerStore();
    await store.putChannel('ch', channelRecord());
    const others = Array.from({ length: 5 }, () =>
      peer({ report: report({ bufferS: 7, downloadKbps: 900 }) }),
    );
    const first = peer({ firstTier: true, uploadKbps: 5000 });
    for (const p of [...others, first]) await store.putPeer(p);
    for (const p of others) await store.addLink(first.id, p.id);
    // Everyone got bytes from the first-tier peer; the last one also fed the first shown one.
    for (const p of others) p.flowsIn = { [first.id]: 10 };
    others[0]!.flowsIn[others[4]!.id] = 20;
    const stats = new StatsKeeper(store, { historyLength: 10, maxSnapshotPeers: 3 });
    const o = await stats.overlay('ch');
    assert.equal(o.totalPeers, 6);
    assert.equal(o.peers.length, 3);
    assert.equal(o.peers[0]!.id, first.id);
    assert.ok(o.peers[0]!.firstTier);
    assert.equal(o.peers[0]!.uploadKbps, 5000, 'declared upload until a report comes');
    assert.equal(o.peers[1]!.bufferS, 7);
    assert.equal(o.peers[1]!.downloadKbps, 900);
    assert.equal(o.peers[0]!.uploadedBytes, 0, 'no report: nothing uploaded yet');
    const shown = new Set(o.peers.map((p) => p.id));
    assert.ok(!shown.has(others[4]!.id));
    assert.equal(o.links.length, 2);
    for (const [x, y] of o.links) assert.ok(shown.has(x) && shown.has(y));
    assert.equal(o.flows.length, 2, 'only flows between shown peers');
    for (const f of o.flows) assert.ok(shown.has(f.from) && shown.has(f.to));
  });
});
