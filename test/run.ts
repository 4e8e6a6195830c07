/**
 * Runs every test file under test/ (except benchmarks) with Node's built-in test runner.
 * Usage: npm test [-- FILTER…]  (FILTER: substrings of test file paths)
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const filters = process.argv.slice(2);
const files: string[] = [];
const walk = (dir: string): void => {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith('.test.ts')) files.push(path.relative(root, p));
  }
};
walk(path.join(root, 'test'));
files.sort();
const selected = filters.length ? files.filter((f) => filters.some((x) => f.includes(x))) : files;
if (selected.length === 0) {
  console.error(`no test file matches ${filters.join(' ')}`);
  process.exit(1);
}
// Heavy files (several Chromium pages, WebRTC swarms, benchmark runs) run one at a time after the rest,
// so they neither starve nor get starved by timing-sensitive tests on a 2-core machine.
const HEAVY = [/^test\/player\//, /^test\/peer\/swarm\.test\.ts$/, /^test\/bench\//, /^test\/natlab\//];
const heavy = selected.filter((f) => HEAVY.some((re) => re.test(f)));
const light = selected.filter((f) => !heavy.includes(f));
let status = 0;
for (const [files, concurrency] of [
  [light, 2],
  [heavy, 1],
] as const) {
  if (files.length === 0) continue;
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-reporter=spec', `--test-concurrency=${concurrency}`, ...files],
    { cwd: root, stdio: 'inherit', env: { ...process.env, NODE_NO_WARNINGS: '1' } },
  );
  if (r.status !== 0) status = r.status ?? 1;
}
process.exit(status);
