/** Keeps `npm run bench:peer` from rotting: a short run must produce its figures and report (values not judged). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT as root, runNode } from '../helpers/process.ts';

test('bench:peer runs end to end with two viewers and writes its report', { timeout: 120_000 }, async () => {
  const { code, stdout, stderr } = await runNode(
    [
      'test/bench/peer.bench.ts',
      '--viewers',
      '2',
      '--duration',
      '12',
      '--skip-datachannel',
      '--ladder',
      '180p:320x180:300:48',
      '--stagger-ms',
      '300',
    ],
    { tsx: true, timeoutMs: 110_000 },
  );
  assert.equal(code, 0, stderr.slice(-2000));
  assert.match(
    stdout.trim().split('\n').at(-1)!,
    /^offload=\S+ stalls=\d+ continuity=\S+ startup_p50_s=\S+ startup_p95_s=\S+ latency_p50_s=\S+ latency_p95_s=\S+ p2p_segment_p50_ms=\S+ cpu_per_viewer_pct=\S+ rss_per_viewer_mb=\S+ viewers=2$/,
  );
  const report = /report: (\S+)/.exec(stdout)?.[1];
  assert.ok(report);
  const dir = path.dirname(path.resolve(root, report));
  const result = JSON.parse(fs.readFileSync(path.join(dir, 'result.json'), 'utf8')) as {
    swarm: { segmentsPlayed: number };
  };
  assert.ok(result.swarm.segmentsPlayed > 0, 'viewers played segments');
  for (const f of ['report.md', 'offload-over-time.svg', 'latency-histogram.svg'])
    assert.ok(fs.existsSync(path.join(dir, f)), f);
  fs.rmSync(dir, { recursive: true, force: true });
});
