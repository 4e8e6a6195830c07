/** Keeps `npm run bench:source` from rotting: a short run must produce its figures and report (values not judged). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT as root, runNode } from '../helpers/process.ts';

test('bench:source runs end to end on a tiny ladder and writes its report', async () => {
  const { code, stdout, stderr } = await runNode(
    [
      'test/bench/source.bench.ts',
      '--duration',
      '10',
      '--rtf-seconds',
      '4',
      '--ladder',
      '180p:320x180:300:48',
    ],
    { tsx: true, timeoutMs: 120_000 },
  );
  assert.equal(code, 0, stderr);
  const lines = stdout.trim().split('\n');
  assert.match(
    lines.at(-1)!,
    /^rtf=\d+\.\d+ attest_median_ms=\d+\.\d attest_p95_ms=\d+\.\d indexed_median_ms=\d+\.\d drift_s=-?\d+\.\d+ segments=\d+$/,
  );
  const report = /report: (\S+)/.exec(stdout)?.[1];
  assert.ok(report, 'report path printed');
  const dir = path.dirname(path.resolve(root, report));
  const result = JSON.parse(fs.readFileSync(path.join(dir, 'result.json'), 'utf8')) as {
    publication: { segments: number };
  };
  assert.ok(result.publication.segments > 0, 'segments were measured');
  for (const f of ['report.md', 'latency-histogram.svg', 'latency-over-time.svg'])
    assert.ok(fs.existsSync(path.join(dir, f)), f);
  fs.rmSync(dir, { recursive: true, force: true });
});
