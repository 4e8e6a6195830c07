/**
 * Keeps `npm run bench` (the swarm benchmark) from rotting: short runs on a tiny ladder must produce
 * their figures, report and plots (the values are not judged), browsers on the real watch page must be
 * measured (startup from navigation start, CPU of Chromium and of the page), and bad flags are refused
 * in one line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT as root, runNode } from '../helpers/process.ts';

const SUMMARY =
  /^offload=\S+ continuity=\S+ stalls=\d+ startup_p95_s=\S+ latency_p50_s=\S+ viewers=(\d+) scenario=(\S+)$/;

async function bench(args: string[], plots: string[] = []) {
  const r = await runNode(
    ['test/bench/swarm.bench.ts', '--ladder', '180p:320x180:300:48', '--stagger-ms', '300', ...args],
    { tsx: true, timeoutMs: 150_000 },
  );
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  const summary = SUMMARY.exec(r.stdout.trim().split('\n').at(-1)!);
  assert.ok(summary, r.stdout.slice(-1000));
  const report = /report: (\S+)/.exec(r.stdout)?.[1];
  assert.ok(report);
  const dir = path.dirname(path.resolve(root, report));
  const result = JSON.parse(fs.readFileSync(path.join(dir, 'result.json'), 'utf8')) as {
    phases: {
      phase: string;
      page: string | null;
      browsers: { startupMs: number | null; cpu: { processCores: number | null } }[];
      figures: {
        browser: { cpu: { chromiumCores: number } };
        segmentsPlayed: number;
        consumedBytes: number;
        offload: number;
        startupS: { n: number };
        joinErrors: string[];
        poisoners: number;
      };
      ticks: unknown[];
    }[];
  };
  for (const f of [
    'report.md',
    'offload-over-time.svg',
    'origin-egress.svg',
    'latency.svg',
    'stalls.svg',
    'upload-distribution.svg',
    ...plots,
  ])
    assert.ok(fs.existsSync(path.join(dir, f)), f);
  fs.rmSync(dir, { recursive: true, force: true });
  return { summary, result };
}

test(
  'bench: a steady run with two Node viewers and one browser on the watch page, plus the http-only baseline',
  { timeout: 160_000 },
  async () => {
    const { summary, result } = await bench(
      ['--viewers', '2', '--browsers', '1', '--duration', '20', '--baseline'],
      ['chromium-cpu.svg'],
    );
    assert.equal(summary[1], '3');
    assert.equal(summary[2], 'steady');
    assert.deepEqual(
      result.phases.map((p) => p.phase),
      ['steady', 'http-only'],
    );
    for (const p of result.phases) {
      assert.deepEqual(p.figures.joinErrors, [], `${p.phase}: every viewer joined`);
      assert.ok(p.figures.segmentsPlayed > 0, `${p.phase}: viewers played segments`);
      assert.ok(p.figures.consumedBytes > 0, `${p.phase}: bytes consumed`);
      assert.ok(Number.isFinite(p.figures.offload), `${p.phase}: offload measured`);
      assert.ok(p.figures.startupS.n > 0, `${p.phase}: startup measured`);
      assert.ok(p.ticks.length >= 15, `${p.phase}: figures over time`);
      assert.equal(p.page, 'watch', `${p.phase}: the watch page by default`);
      assert.ok(p.browsers[0]!.startupMs !== null, `${p.phase}: the browser played`);
      assert.ok(p.figures.browser.cpu.chromiumCores > 0, `${p.phase}: Chromium's CPU measured`);
      assert.ok((p.browsers[0]!.cpu.processCores ?? 0) > 0, `${p.phase}: the page's CPU measured`);
    }
  },
);

test(
  'bench: the poison scenario runs (one poisoning Node peer among five)',
  { timeout: 160_000 },
  async () => {
    const { summary, result } = await bench([
      '--scenario',
      'poison',
      '--viewers',
      '5',
      '--browsers',
      '0',
      '--duration',
      '15',
    ]);
    assert.equal(summary[2], 'poison');
    assert.equal(result.phases[0]!.figures.poisoners, 1, '20 % of 5 Node peers poison');
    assert.ok(result.phases[0]!.figures.segmentsPlayed > 0);
  },
);

test('bench: bad flags give one line and exit 2', async () => {
  for (const args of [
    ['--scenario', 'nope'],
    ['--viewers', 'x'],
    ['--bogus'],
    ['--viewers', '0', '--browsers', '0'],
    ['--page', 'watch,nope'],
    ['--policy', 'toString'],
    ['--upload-dist', 'constructor'],
  ]) {
    const r = await runNode(['test/bench/swarm.bench.ts', ...args], { tsx: true, timeoutMs: 30_000 });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^bench: /);
  }
});
