/** Keeps `npm run bench:stun` from rotting: short runs must produce figures and a report (values not judged). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runNode } from '../helpers/process.ts';

const hasTurnserver = (process.env.PATH ?? '')
  .split(path.delimiter)
  .filter(Boolean)
  .some((dir) => {
    try {
      fs.accessSync(path.join(dir, 'turnserver'), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });

interface ServerResult {
  skipped?: string;
  answered: number;
  answeredPerS: number;
  latencyMs: { p50: number; p99: number };
  idleLatencyMs: { p50: number };
  server: { cpuS: number; requestsPerCpuS: number };
}
const NUM = '\\d+(?:\\.\\d+)?';
const SUMMARY = new RegExp(
  `^ours_rps=(${NUM}) coturn_rps=(${NUM}|-) ours_p99_ms=${NUM} coturn_p99_ms=(?:${NUM}|-)` +
    ` ours_cpu_pct=${NUM} coturn_cpu_pct=(?:${NUM}|-) ours_req_per_cpu_s=${NUM} coturn_req_per_cpu_s=(?:${NUM}|-)$`,
);

async function bench(args: string[]) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'peertv-stun-bench-smoke-'));
  const r = await runNode(['test/bench/stun.bench.ts', '--out', out, ...args], {
    tsx: true,
    timeoutMs: 60_000,
  });
  assert.equal(r.code, 0, r.stderr);
  const summary = SUMMARY.exec(r.stdout.trim().split('\n').at(-1)!);
  assert.ok(summary, `last line is the summary: ${r.stdout.trim().split('\n').at(-1)}`);
  assert.ok(fs.existsSync(path.join(out, 'report.md')), 'report.md');
  const result = JSON.parse(fs.readFileSync(path.join(out, 'result.json'), 'utf8')) as {
    servers: Record<'ours' | 'coturn', ServerResult>;
  };
  return { out, summary, servers: result.servers };
}

function assertMeasured(name: string, s: ServerResult) {
  assert.equal(s.skipped, undefined, `${name} was measured`);
  for (const [k, v] of Object.entries({
    answered: s.answered,
    answeredPerS: s.answeredPerS,
    p50: s.latencyMs.p50,
    p99: s.latencyMs.p99,
    idleP50: s.idleLatencyMs.p50,
    cpuS: s.server.cpuS,
    requestsPerCpuS: s.server.requestsPerCpuS,
  }))
    assert.ok(typeof v === 'number' && Number.isFinite(v) && v > 0, `${name}: ${k} > 0 (${v})`);
}

test('bench:stun measures ours and coturn side by side and writes its report', async () => {
  const { out, summary, servers } = await bench(['--duration', '2', '--warmup', '1']);
  assertMeasured('ours', servers.ours);
  assert.ok(Number(summary[1]) > 0);
  if (hasTurnserver) {
    assertMeasured('coturn', servers.coturn);
    assert.ok(Number(summary[2]) > 0);
  } else assert.match(servers.coturn.skipped ?? '', /turnserver/);
  for (const f of ['answered-per-second.svg', 'server-cpu.svg', 'latency-ours.svg'])
    assert.ok(fs.existsSync(path.join(out, f)), f);
  fs.rmSync(out, { recursive: true, force: true });
});

test('bench:stun without turnserver still measures ours and says why coturn was skipped', async () => {
  const missing = path.join(os.tmpdir(), 'no-such-dir', 'turnserver');
  const { out, summary, servers } = await bench([
    '--duration',
    '1',
    '--warmup',
    '0.5',
    '--turnserver',
    missing,
  ]);
  assertMeasured('ours', servers.ours);
  assert.equal(summary[2], '-');
  assert.match(servers.coturn.skipped ?? '', /not an executable/);
  assert.match(fs.readFileSync(path.join(out, 'report.md'), 'utf8'), /coturn skipped/);
  fs.rmSync(out, { recursive: true, force: true });
});

test('bench:stun rejects a bad flag in one line with exit status 2', async () => {
  const r = await runNode(['test/bench/stun.bench.ts', '--window', 'many'], { tsx: true });
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /--window/);
});
