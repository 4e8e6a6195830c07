/** The segment store: capacity, eviction order, live windows, pins and events. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { GENESIS_HASH, type Attestation } from '../../protocol/index.ts';
import {
  DEFAULT_SEGMENT_STORE_CAPACITY,
  MemorySegmentStore,
  toRanges,
  type SegmentStoreEvents,
} from '../../peer/core/segment-store.ts';

function att(rendition: string, seq: number, byteLength: number): Attestation {
  return {
    v: 1,
    channel: 'demo',
    rendition,
    mediaSequence: seq,
    discontinuitySequence: 0,
    byteLength,
    durationMs: 2000,
    sha256: 'b'.repeat(64),
    prevHash: GENESIS_HASH,
    publishedAtMs: 1_700_000_000_000 + seq,
    signature: 'A'.repeat(86),
  };
}

/** A store with an event log. */
function setup(capacityBytes: number) {
  const store = new MemorySegmentStore({ capacityBytes });
  const log: string[] = [];
  store.on('added', ({ rendition, seqs }) => log.push(`+${rendition}:${seqs.join(',')}`));
  store.on('evicted', ({ rendition, seqs, reason }) => log.push(`-${rendition}:${seqs.join(',')}:${reason}`));
  const put = (rendition: string, seq: number, size = 100) =>
    store.put(rendition, seq, new Uint8Array(size).fill(seq & 0xff), att(rendition, seq, size));
  return { store, log, put };
}

describe('MemorySegmentStore basics', () => {
  test('put, get, has, held, ranges, delete, bytesUsed', () => {
    const { store, log, put } = setup(10_000);
    assert.equal(store.capacityBytes, 10_000);
    for (const s of [5, 3, 4, 9, 10, 12]) assert.equal(put('480p', s), true);
    assert.equal(put('240p', 4, 50), true);
    assert.equal(store.bytesUsed, 650);
    assert.equal(store.count, 7);
    assert.deepEqual(store.held('480p'), [3, 4, 5, 9, 10, 12]);
    assert.deepEqual(store.heldRanges('480p'), [
      [3, 5],
      [9, 10],
      [12, 12],
    ]);
    assert.deepEqual(store.held('720p'), []);
    assert.deepEqual(store.renditions(), ['240p', '480p']);
    assert.equal(store.has('480p', 4), true);
    assert.equal(store.has('480p', 6), false);
    const got = store.get('480p', 9)!;
    assert.equal(got.bytes.length, 100);
    assert.equal(got.bytes[0], 9);
    assert.equal(got.attestation.mediaSequence, 9);
    assert.equal(store.get('480p', 6), undefined);

    assert.equal(store.delete('480p', 4), true);
    assert.equal(store.delete('480p', 4), false);
    assert.equal(store.bytesUsed, 550);
    assert.deepEqual(log, [
      '+480p:5',
      '+480p:3',
      '+480p:4',
      '+480p:9',
      '+480p:10',
      '+480p:12',
      '+240p:4',
      '-480p:4:deleted',
    ]);
    store.clear();
    assert.equal(store.bytesUsed, 0);
    assert.equal(store.count, 0);
    assert.deepEqual(log.slice(-2).sort(), ['-240p:4:deleted', '-480p:3,5,9,10,12:deleted']);
  });

  test('a duplicate put keeps the first copy and emits nothing', () => {
    const { store, log, put } = setup(1000);
    assert.equal(put('480p', 1), true);
    const first = store.get('480p', 1)!.bytes;
    assert.equal(put('480p', 1), false);
    assert.equal(store.get('480p', 1)!.bytes, first);
    assert.equal(store.bytesUsed, 100);
    assert.deepEqual(log, ['+480p:1']);
  });

  test('misuse throws a TypeError', () => {
    const store = new MemorySegmentStore();
    assert.equal(store.capacityBytes, DEFAULT_SEGMENT_STORE_CAPACITY);
    const bytes = new Uint8Array(10);
    assert.throws(() => store.put('480p', 1, bytes, att('480p', 2, 10)), TypeError);
    assert.throws(() => store.put('480p', 1, bytes, att('240p', 1, 10)), TypeError);
    assert.throws(() => store.put('480p', 1, bytes, att('480p', 1, 11)), TypeError);
    assert.throws(() => store.put('Bad Name', 1, bytes, att('Bad Name', 1, 10)), TypeError);
    assert.throws(() => store.put('480p', -1, bytes, att('480p', -1, 10)), TypeError);
    assert.throws(() => new MemorySegmentStore({ capacityBytes: -1 }), RangeError);
    assert.equal(store.count, 0);
  });

  test('toRanges', () => {
    assert.deepEqual(toRanges([]), []);
    assert.deepEqual(toRanges([7]), [[7, 7]]);
    assert.deepEqual(toRanges([1, 2, 3, 5, 7, 8]), [
      [1, 3],
      [5, 5],
      [7, 8],
    ]);
  });
});

describe('MemorySegmentStore eviction', () => {
  test('over capacity: the oldest (lowest sequence) goes first, across renditions', () => {
    const { store, log, put } = setup(500);
    put('480p', 10);
    put('240p', 11);
    put('480p', 12);
    put('240p', 9); // oldest by sequence although newest stored
    put('480p', 13);
    assert.equal(store.bytesUsed, 500);
    assert.deepEqual(log.splice(0), ['+480p:10', '+240p:11', '+480p:12', '+240p:9', '+480p:13']);
    put('480p', 14);
    assert.deepEqual(log.splice(0), ['+480p:14', '-240p:9:capacity']);
    put('480p', 15, 250); // needs three slots' worth: 10, 11, 12 go
    assert.deepEqual(log.splice(0).sort(), ['+480p:15', '-240p:11:capacity', '-480p:10,12:capacity']);
    assert.deepEqual(store.held('480p'), [13, 14, 15]);
    assert.equal(store.bytesUsed, 450);
  });

  test('equal sequences of different renditions: the one stored first goes first', () => {
    const { store, put } = setup(300);
    put('240p', 5);
    put('480p', 5);
    put('720p', 5);
    put('720p', 6);
    assert.deepEqual(store.renditions(), ['480p', '720p']);
  });

  test('segments behind the live window go before anything else', () => {
    const { store, log, put } = setup(500);
    for (const s of [20, 21, 22]) put('480p', s);
    for (const s of [30, 31]) put('240p', s);
    store.setWindow('240p', 31); // 240p/30 is behind: evictable first although 480p/20 is older
    put('480p', 23);
    assert.deepEqual(log.at(-1), '-240p:30:capacity');
    store.setWindow('480p', 22); // 20 and 21 behind
    put('480p', 24);
    put('480p', 25);
    assert.deepEqual(log.slice(-4), ['+480p:24', '-480p:20:capacity', '+480p:25', '-480p:21:capacity']);
    // Nothing behind any more: the oldest overall again.
    put('480p', 26);
    assert.deepEqual(log.at(-1), '-480p:22:capacity');
    assert.deepEqual(store.held('480p'), [23, 24, 25, 26]);
    assert.deepEqual(store.held('240p'), [31]);
  });

  test('a window alone evicts nothing while there is room', () => {
    const { store, put } = setup(1000);
    for (const s of [1, 2, 3]) put('480p', s);
    store.setWindow('480p', 100);
    assert.deepEqual(store.held('480p'), [1, 2, 3]);
  });

  test('pinned segments are never evicted; unpinning releases the excess', () => {
    const { store, log, put } = setup(300);
    put('480p', 1);
    put('480p', 2);
    put('480p', 3);
    store.pin('480p', 1);
    store.pin('480p', 1); // reference-counted
    store.pin('480p', 2);
    assert.equal(store.isPinned('480p', 1), true);
    put('480p', 4);
    assert.deepEqual(log.slice(-2), ['+480p:4', '-480p:3:capacity']);
    // Everything else pinned: the new, least useful segment cannot stay... unless it is newer.
    store.pin('480p', 4);
    assert.equal(put('480p', 0), false, 'an older segment than all pinned ones does not stay');
    assert.deepEqual(store.held('480p'), [1, 2, 4]);
    assert.equal(put('480p', 5), false, 'nothing unpinned to make room');
    assert.equal(log.at(-1), '-480p:3:capacity', 'no event for segments that did not stay');
    // Pinned in advance: protected as soon as it arrives, even beyond the capacity.
    store.pin('480p', 6);
    assert.equal(put('480p', 6), true);
    assert.equal(store.bytesUsed, 400);
    assert.deepEqual(log.at(-1), '+480p:6');
    store.unpin('480p', 1);
    assert.equal(store.bytesUsed, 400, 'still pinned once');
    store.unpin('480p', 1);
    assert.equal(store.isPinned('480p', 1), false);
    assert.deepEqual(log.at(-1), '-480p:1:capacity');
    assert.equal(store.bytesUsed, 300);
    store.unpin('480p', 99); // unknown: ignored
    // A pinned segment can still be deleted explicitly.
    assert.equal(store.delete('480p', 2), true);
  });

  test('a segment larger than the capacity is refused', () => {
    const { store, log, put } = setup(100);
    assert.equal(put('480p', 1, 101), false);
    assert.equal(put('480p', 2, 100), true);
    assert.deepEqual(log, ['+480p:2']);
    assert.equal(store.bytesUsed, 100);
  });

  test('lowering the capacity evicts at once', () => {
    const { store, log, put } = setup(1000);
    for (let s = 0; s < 10; s++) put('480p', s);
    store.setCapacity(350);
    assert.deepEqual(log.at(-1), '-480p:0,1,2,3,4,5,6:capacity');
    assert.deepEqual(store.held('480p'), [7, 8, 9]);
    store.setCapacity(0);
    assert.equal(store.count, 0);
  });

  test('listeners see the settled state; a throwing listener does not break the store', () => {
    const store = new MemorySegmentStore({ capacityBytes: 200 });
    store.onListenerError = () => {};
    const seen: { used: number; held: number[] }[] = [];
    const record: SegmentStoreEvents['added'] = () =>
      seen.push({ used: store.bytesUsed, held: store.held('480p') });
    store.on('added', () => {
      throw new Error('boom');
    });
    store.on('added', record);
    store.on('evicted', record);
    for (const s of [1, 2, 3]) store.put('480p', s, new Uint8Array(100), att('480p', s, 100));
    assert.deepEqual(seen.at(-1), { used: 200, held: [2, 3] });
    assert.deepEqual(seen.at(-2), { used: 200, held: [2, 3] });
  });

  test('many segments stay within capacity', () => {
    const { store, put } = setup(64 * 1000);
    for (let s = 0; s < 5000; s++) {
      put('480p', s, 1000);
      if (s % 10 === 0) store.setWindow('480p', s - 30);
    }
    assert.equal(store.bytesUsed, 64 * 1000);
    assert.deepEqual(store.heldRanges('480p'), [[5000 - 64, 4999]]);
  });
});
