/** The scheduler alone: a pure decision step (demands, neighbours, estimates, now in; actions out). */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  schedule,
  type DemandView,
  type DownloadView,
  type NeighbourView,
  type SchedulerInput,
  type TransferView,
} from '../../peer/core/scheduler.ts';

const NOW = 100_000;
const SEGMENT_BYTES = 500_000;

/** A neighbour holding `seqs` of rendition 'r', 1 MB/s, 50 ms to first byte, idle. */
function neighbour(id: string, seqs: number[], over: Partial<NeighbourView> = {}): NeighbourView {
  return {
    id,
    open: true,
    demoted: false,
    busyUntil: 0,
    inFlight: 0,
    firstByteMs: 50,
    throughputBps: 1_000_000,
    receivedBytes: 0,
    supplierRank: Infinity,
    holdsSegment: (r, s) => r === 'r' && seqs.includes(s),
    receivingSegment: () => false,
    ...over,
  };
}

function demand(seq: number, deadlineInMs: number, createdAgoMs = 0): DemandView {
  return {
    rendition: 'r',
    mediaSequence: seq,
    deadlineAt: NOW + deadlineInMs,
    createdAt: NOW - createdAgoMs,
  };
}

/** HTTP: 100 ms to first byte, 2 MB/s (a segment in 350 ms). */
function input(
  over: Partial<SchedulerInput> & { transfers?: Map<number, TransferView> } = {},
): SchedulerInput {
  const transfers = over.transfers ?? new Map<number, TransferView>();
  return {
    now: NOW,
    opts: {
      p2p: true,
      safetyMarginMs: 700,
      p2pStallMs: 1000,
      parentWaitMs: 1500,
      schedulerTickMs: 100,
      followPlayerRendition: false,
    },
    demands: [],
    neighbours: [],
    estimates: {
      expectedBytes: () => SEGMENT_BYTES,
      httpEstimateMs: (bytes) => 100 + (bytes / 2_000_000) * 1000,
      topBitrateBps: 4_000_000,
    },
    transfer: (_r, s) => transfers.get(s),
    unverified: () => false,
    held: () => false,
    firstTier: {
      active: false,
      rendition: 'r',
      newestPublished: -1,
      renditionSet: false,
      isGap: () => false,
    },
    ...over,
  };
}

/** A P2P transfer of segment 7's kind from neighbour 'a' (1 MB/s, in flight), with `download` set. */
function fromA(download: Partial<DownloadView>): TransferView {
  return {
    via: 'p2p',
    neighbourId: 'a',
    neighbourThroughputBps: 1_000_000,
    inFlight: true,
    download: {
      startedAt: NOW - 2000,
      lastProgressAt: NOW - 2000,
      firstByteAt: undefined,
      received: 0,
      totalBytes: SEGMENT_BYTES,
      relayed: false,
      ...download,
    },
  };
}

describe('scheduler', () => {
  test('P2P from a holder that can make the deadline with the margin', () => {
    // 50 ms + 500 ms from the neighbour, + 700 ms margin: 1 250 ms < 3 000 ms.
    const actions = schedule(input({ demands: [demand(7, 3000)], neighbours: [neighbour('a', [7])] }));
    assert.deepEqual(actions, [
      { type: 'p2p', rendition: 'r', mediaSequence: 7, neighbourId: 'a', deadlineAt: NOW + 3000 },
    ]);
  });

  test('no holder can make it and time is short: HTTP', () => {
    // The holder needs 550 ms + 700 ms margin > 1 000 ms; HTTP needs 350 + 700 (+ 700 to wait) ≥ 1 000.
    const actions = schedule(input({ demands: [demand(7, 1000, 500)], neighbours: [neighbour('a', [7])] }));
    assert.deepEqual(actions, [{ type: 'http', rendition: 'r', mediaSequence: 7, waitedForP2p: true }]);
  });

  test('a neighbour still receiving the segment is asked (it relays it); one that holds it first', () => {
    const relaying = neighbour('b', [], { receivingSegment: (r, s) => r === 'r' && s === 7 });
    assert.deepEqual(schedule(input({ demands: [demand(7, 3000)], neighbours: [relaying] })), [
      { type: 'p2p', rendition: 'r', mediaSequence: 7, neighbourId: 'b', deadlineAt: NOW + 3000 },
    ]);
    // A holder wins over a relay of the same rank, even one we have taken more from.
    const holder = neighbour('a', [7], { receivedBytes: 10_000_000 });
    assert.deepEqual(schedule(input({ demands: [demand(7, 3000)], neighbours: [relaying, holder] })), [
      { type: 'p2p', rendition: 'r', mediaSequence: 7, neighbourId: 'a', deadlineAt: NOW + 3000 },
    ]);
    // A ranked parent that relays wins over a holder that is not one.
    const parent = neighbour('c', [], { supplierRank: 0, receivingSegment: () => true });
    assert.deepEqual(schedule(input({ demands: [demand(7, 3000)], neighbours: [holder, parent] })), [
      { type: 'p2p', rendition: 'r', mediaSequence: 7, neighbourId: 'c', deadlineAt: NOW + 3000 },
    ]);
  });

  test('a relay waiting for its own supplier is not stalled before its first byte; after it, it is, unblamed', () => {
    const relayed = (over: Partial<DownloadView>) =>
      new Map<number, TransferView>([[7, fromA({ relayed: true, ...over })]]);
    const a = neighbour('a', [], { inFlight: 1, receivingSegment: () => true });
    // 2 s without a byte, but 4 s left (the 500 ms transfer still fits): left alone.
    assert.deepEqual(
      schedule(input({ demands: [demand(7, 4000)], neighbours: [a], transfers: relayed({}) })),
      [],
    );
    // Time runs short: switched to HTTP as too slow, not held against the relay.
    assert.deepEqual(
      schedule(input({ demands: [demand(7, 700)], neighbours: [a], transfers: relayed({}) })),
      [
        {
          type: 'switch',
          rendition: 'r',
          mediaSequence: 7,
          neighbourId: 'a',
          why: 'too slow',
          blame: false,
          relayed: true,
        },
      ],
    );
    // Bytes came, then nothing for 1.5 s: stalled, still not blamed.
    const after = relayed({ firstByteAt: NOW - 1900, lastProgressAt: NOW - 1500, received: 50_000 });
    assert.deepEqual(schedule(input({ demands: [demand(7, 4000)], neighbours: [a], transfers: after })), [
      {
        type: 'switch',
        rendition: 'r',
        mediaSequence: 7,
        neighbourId: 'a',
        why: 'stalled',
        blame: false,
        relayed: true,
      },
    ]);
  });

  test('nobody holds it yet but time is left: wait for P2P (no action)', () => {
    const actions = schedule(input({ demands: [demand(7, 5000)], neighbours: [neighbour('a', [])] }));
    assert.deepEqual(actions, []);
  });

  test('without neighbours or without P2P: HTTP at once', () => {
    assert.deepEqual(schedule(input({ demands: [demand(7, 5000)] })), [
      { type: 'http', rendition: 'r', mediaSequence: 7 },
    ]);
    const noP2p = input({ demands: [demand(7, 5000)], neighbours: [neighbour('a', [7])] });
    noP2p.opts.p2p = false;
    assert.deepEqual(schedule(noP2p), [{ type: 'http', rendition: 'r', mediaSequence: 7 }]);
  });

  test('a stalled transfer is switched to HTTP and the neighbour blamed', () => {
    const transfers = new Map<number, TransferView>([
      [7, fromA({ lastProgressAt: NOW - 1500, firstByteAt: NOW - 1900, received: 100_000 })],
    ]);
    const actions = schedule(
      input({ demands: [demand(7, 4000)], neighbours: [neighbour('a', [7], { inFlight: 1 })], transfers }),
    );
    assert.deepEqual(actions, [
      {
        type: 'switch',
        rendition: 'r',
        mediaSequence: 7,
        neighbourId: 'a',
        why: 'stalled',
        blame: true,
        relayed: false,
      },
    ]);
  });

  test('a transfer making progress in time is left alone; one in flight over HTTP too', () => {
    const transfers = new Map<number, TransferView>([
      [
        7,
        fromA({ startedAt: NOW - 200, lastProgressAt: NOW - 10, firstByteAt: NOW - 150, received: 150_000 }),
      ],
      [8, { via: 'http' }],
    ]);
    const actions = schedule(
      input({
        demands: [demand(7, 3000), demand(8, 100)],
        neighbours: [neighbour('a', [7, 8], { inFlight: 1 })],
        transfers,
      }),
    );
    assert.deepEqual(actions, []);
  });

  test('requests spread over holders: least taken from first, and within one round', () => {
    const neighbours = [
      neighbour('a', [1, 2, 3], { receivedBytes: 5_000_000 }),
      neighbour('b', [1, 2, 3], { receivedBytes: 1_000_000 }),
      neighbour('c', [1, 2, 3], { receivedBytes: 3_000_000 }),
    ];
    const actions = schedule(
      input({ demands: [demand(1, 5000), demand(2, 5000), demand(3, 5000)], neighbours }),
    );
    assert.deepEqual(
      actions.map((a) => (a.type === 'p2p' ? a.neighbourId : a.type)),
      ['b', 'c', 'a'],
    );
  });

  test("the tracker's ranked suppliers first while they can make the deadline, then the least taken from", () => {
    const neighbours = [
      neighbour('other', [1, 2, 3, 4]),
      neighbour('backup', [1, 2, 3, 4], { supplierRank: 1, receivedBytes: 8_000_000 }),
      neighbour('parent', [1, 2, 3, 4], { supplierRank: 0, receivedBytes: 9_000_000 }),
      // A parent too slow for the deadline (500 kB at 100 kB/s: 5 s) is passed over.
      neighbour('slow-parent', [4], { supplierRank: 0, throughputBps: 100_000 }),
    ];
    const actions = schedule(
      input({ demands: [demand(1, 5000), demand(2, 5000), demand(3, 5000), demand(4, 3000)], neighbours }),
    );
    assert.deepEqual(
      actions.map((a) => (a.type === 'p2p' ? a.neighbourId : a.type)),
      // Two in flight per neighbour at most: the parent twice, then the backup, never `other` meanwhile.
      ['parent', 'parent', 'backup', 'backup'],
    );
  });

  test('a young demand waits for its parent while the deadline leaves room; then takes another holder', () => {
    const neighbours = [neighbour('other', [1]), neighbour('parent', [], { supplierRank: 0 })];
    const pick = (createdAgoMs: number, deadlineInMs: number) =>
      schedule(input({ demands: [demand(1, deadlineInMs, createdAgoMs)], neighbours })).map((a) =>
        a.type === 'p2p' ? a.neighbourId : a.type,
      );
    assert.deepEqual(pick(0, 8000), [], 'waits: the parent may still get it');
    assert.deepEqual(pick(1500, 8000), ['other'], 'waited parentWaitMs: another holder');
    assert.deepEqual(pick(0, 2500), ['other'], 'no room to wait before the deadline');
    // A parent that holds it already, too slow for the deadline (500 kB at 50 kB/s): nothing to wait for.
    const slowHolder = schedule(
      input({
        demands: [demand(1, 8000)],
        neighbours: [
          neighbour('other', [1]),
          neighbour('parent', [1], { supplierRank: 0, throughputBps: 50_000 }),
        ],
      }),
    );
    assert.deepEqual(
      slowHolder.map((a) => (a.type === 'p2p' ? a.neighbourId : a.type)),
      ['other'],
      'a parent that holds it but cannot make it is not waited for',
    );
    const noParent = schedule(input({ demands: [demand(1, 8000)], neighbours: [neighbour('other', [1])] }));
    assert.deepEqual(
      noParent.map((a) => (a.type === 'p2p' ? a.neighbourId : a.type)),
      ['other'],
      'no ranked supplier: nothing to wait for',
    );
  });

  test('a busy, demoted or saturated holder is not asked', () => {
    const neighbours = [
      neighbour('busy', [1], { busyUntil: NOW + 1000 }),
      neighbour('demoted', [1], { demoted: true }),
      neighbour('full', [1], { inFlight: 2 }),
      neighbour('ok', [1], { receivedBytes: 9e9 }),
    ];
    const actions = schedule(input({ demands: [demand(1, 5000)], neighbours }));
    assert.deepEqual(
      actions.map((a) => (a.type === 'p2p' ? a.neighbourId : a.type)),
      ['ok'],
    );
  });

  test('first tier pulls the newest two segments, once the player set the rendition if it follows it', () => {
    const firstTier = {
      active: true,
      rendition: 'r',
      newestPublished: 9,
      renditionSet: false,
      isGap: () => false,
    };
    const follow = input({ firstTier });
    follow.opts.followPlayerRendition = true;
    assert.deepEqual(schedule(follow), []);
    const set = input({ firstTier: { ...firstTier, renditionSet: true } });
    set.opts.followPlayerRendition = true;
    assert.deepEqual(schedule(set), [
      { type: 'pull', rendition: 'r', mediaSequence: 8 },
      { type: 'pull', rendition: 'r', mediaSequence: 9 },
    ]);
    // Not following the player: pulls at once; held or gap segments are skipped.
    const own = input({ firstTier: { ...firstTier, isGap: (s) => s === 8 }, held: (_r, s) => s === 9 });
    assert.deepEqual(schedule(own), []);
  });

  test('a demand for a segment the first tier pulls this round waits for that pull', () => {
    const firstTier = {
      active: true,
      rendition: 'r',
      newestPublished: 9,
      renditionSet: true,
      isGap: () => false,
    };
    const actions = schedule(input({ firstTier, demands: [demand(9, 200)] }));
    assert.deepEqual(actions, [
      { type: 'pull', rendition: 'r', mediaSequence: 8 },
      { type: 'pull', rendition: 'r', mediaSequence: 9 },
    ]);
  });
});
