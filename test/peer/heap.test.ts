import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MinHeap } from '../../peer/index.ts';

test('MinHeap: items come out in order, stale ones skipped at the top and dropped by compact', () => {
  const dead = new Set<number>();
  const heap = new MinHeap<number>(
    (a, b) => a < b,
    (x) => dead.has(x),
  );
  // A fixed pseudo-random order (no Math.random: the test must be the same every run).
  const items = Array.from({ length: 500 }, (_, i) => (i * 7919) % 1009);
  for (const x of items) heap.push(x);
  for (const x of items) if (x % 3 === 0) dead.add(x);
  assert.equal(heap.length, 500);
  heap.compact();
  const alive = items.filter((x) => !dead.has(x)).sort((a, b) => a - b);
  assert.equal(heap.length, alive.length);
  assert.deepEqual(
    [...heap.live()].sort((a, b) => a - b),
    alive,
  );
  // Kill a few more without compacting: pop skips them.
  for (const x of alive.slice(0, 10)) dead.add(x);
  const out: number[] = [];
  for (let x = heap.pop(); x !== undefined; x = heap.pop()) out.push(x);
  assert.deepEqual(out, alive.slice(10));
  assert.equal(heap.peek(), undefined);
});
