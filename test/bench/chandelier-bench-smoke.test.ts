/** Keeps `npm run bench:chandelier` from rotting: a tiny run prints its figures and report (values not judged). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runNode } from '../helpers/process.ts';

test('bench:chandelier plans small swarms, prints its table and summary; a bad flag is one line', async () => {
  const { code, stdout, stderr } = await runNode(
    ['test/bench/chandelier.bench.ts', '--peers', '50,200', '--rounds', '3'],
    { tsx: true, timeoutMs: 60_000 },
  );
  assert.equal(code, 0, stderr);
  const num = '\\d+(?:\\.\\d+)?';
  assert.match(
    stdout.trim().split('\n').at(-1)!,
    new RegExp(
      `^peers=200 plan_ms_median=${num} plan_ms_max=${num} first_ms=${num} first_tier=\\d+ depth=\\d+$`,
    ),
  );
  assert.ok(stdout.includes('| 50 |') && stdout.includes('| 200 |'), 'a row per size');
  assert.match(stdout, /report: \S+report\.md/);
  const bad = await runNode(['test/bench/chandelier.bench.ts', '--symmetric', '2'], { tsx: true });
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim(), 'bench:chandelier: --symmetric must be a share in [0, 1]');
});
