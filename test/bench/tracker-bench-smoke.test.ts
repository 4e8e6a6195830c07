/** Keeps `npm run bench:tracker` from rotting: a tiny run must produce its figures and report (values not judged). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT as root, runNode } from '../helpers/process.ts';

test('bench:tracker runs end to end with a few peers and writes its report', async () => {
  const { code, stdout, stderr } = await runNode(
    [
      'test/bench/tracker.bench.ts',
      '--peers',
      '50',
      '--rate',
      '100',
      '--relay-seconds',
      '3',
      '--hold-seconds',
      '1',
    ],
    { tsx: true, timeoutMs: 60_000 },
  );
  assert.equal(code, 0, stderr);
  const lines = stdout.trim().split('\n');
  const num = '\\d+(?:\\.\\d+)?';
  assert.match(
    lines.at(-1)!,
    new RegExp(
      `^peers_held=\\d+/50 join_rate_per_s=${num} relay_p50_ms=${num} relay_p95_ms=${num} relay_p99_ms=${num}` +
        ` relay_max_ms=${num} relay_lost=\\d+ rss_per_peer_kb=-?${num} tracker_relay_cpu_pct=${num}$`,
    ),
  );
  assert.ok(
    lines.some((l) => l.startsWith('| 50 |')),
    'the table has a row for 50 peers',
  );
  const report = /report: (\S+)/.exec(stdout)?.[1];
  assert.ok(report, 'report path printed');
  const dir = path.dirname(path.resolve(root, report));
  const result = JSON.parse(fs.readFileSync(path.join(dir, 'result.json'), 'utf8')) as {
    steps: {
      peers: number;
      join: { acked: number; ratePerS: number };
      held: { afterHold: number };
      memory: { rssBeforeMB: number; rssAtNMB: number; rssPerPeerKB: number };
      relay: {
        sent: number;
        received: number;
        lost: number;
        latencyMs: { p50: number; p99: number };
        trackerCpuS: number;
      };
    }[];
  };
  const step = result.steps[0]!;
  assert.equal(step.peers, 50);
  for (const [name, v] of Object.entries({
    acked: step.join.acked,
    joinRate: step.join.ratePerS,
    held: step.held.afterHold,
    rssBefore: step.memory.rssBeforeMB,
    rssAtN: step.memory.rssAtNMB,
    rssPerPeer: step.memory.rssPerPeerKB,
    sent: step.relay.sent,
    received: step.relay.received,
    lost: step.relay.lost,
    p50: step.relay.latencyMs.p50,
    p99: step.relay.latencyMs.p99,
    cpu: step.relay.trackerCpuS,
  }))
    assert.ok(typeof v === 'number' && Number.isFinite(v), `${name} is a number (${v})`);
  assert.ok(step.relay.sent > 0, 'signals were sent');
  for (const f of ['report.md', 'rss-vs-peers.svg', 'join-rate-vs-peers.svg', 'relay-latency-vs-peers.svg'])
    assert.ok(fs.existsSync(path.join(dir, f)), f);
  fs.rmSync(dir, { recursive: true, force: true });
});
