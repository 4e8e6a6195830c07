/**
 * The descriptor-exhaustion attack of the hardening issue, as a measurement: a test-pattern
 * `peertv source` under a descriptor limit, many idle TCP connections to its origin for a while, and
 * a viewer polling the live playlist meanwhile. Prints one JSON line: segments lost (gaps in the
 * renditions' indexes), `publish-failed` lines, and the viewer's answered/failed requests.
 *
 *   npx tsx test/bench/descriptor-attack.bench.ts [--limit 4096] [--connections 4200] [--seconds 30]
 *                                        [--reconnect] [--root DIR]
 *
 * `--root`: the checkout whose `bin/peertv.js` is run (default: this one), to measure another version.
 * `--reconnect`: attackers reconnect a second after the origin closes them (sustained pressure).
 * Connections come from 127.0.0.2–127.0.0.51 (Linux routes all of 127/8 to loopback).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { tinySourceArgs } from '../helpers/source-process.ts';

const { values: v } = parseArgs({
  options: {
    limit: { type: 'string', default: '4096' },
    connections: { type: 'string', default: '4200' },
    seconds: { type: 'string', default: '30' },
    reconnect: { type: 'boolean', default: false },
    root: { type: 'string', default: path.resolve(import.meta.dirname, '../..') },
  },
});
const limit = Number(v.limit);
const connections = Number(v.connections);
const holdMs = Number(v.seconds) * 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'peertv-attack-'));
const child = spawn(
  'prlimit',
  [`--nofile=${limit}:${limit}`, '--', process.execPath, 'bin/peertv.js', ...tinySourceArgs(dataDir, 'atk')],
  { cwd: v.root, stdio: ['ignore', 'pipe', 'pipe'] },
);
let output = '';
child.stdout.on('data', (d: Buffer) => (output += d.toString()));
child.stderr.on('data', (d: Buffer) => (output += d.toString()));
const exited = new Promise((r) => child.on('exit', r));

let port = 0;
for (let i = 0; !port; i++) {
  const m = /^live: http:\/\/127\.0\.0\.1:(\d+)\//m.exec(output);
  if (m) port = Number(m[1]);
  else if (i > 600 || child.exitCode !== null) throw new Error(`the source did not start:\n${output}`);
  else await sleep(100);
}
await sleep(4000); // a few segments first

let attacking = true;
const sockets = new Set<net.Socket>();
const open = (i: number): void => {
  const s = net.connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${2 + (i % 50)}` });
  sockets.add(s);
  s.on('error', () => {});
  s.on('close', () => {
    sockets.delete(s);
    if (attacking && v.reconnect) setTimeout(() => open(i), 1000);
  });
};
for (let i = 0; i < connections; i++) {
  open(i);
  if (i % 50 === 49) await sleep(10);
}
let answered = 0;
let failed = 0;
const until = Date.now() + holdMs;
while (Date.now() < until) {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/channels/atk/live/180p.m3u8`, {
      signal: AbortSignal.timeout(3000),
    });
    await r.arrayBuffer();
    if (r.ok) answered++;
    else failed++;
  } catch {
    failed++;
  }
  await sleep(500);
}
attacking = false;
for (const s of sockets) s.destroy();
await sleep(4000);
child.kill('SIGINT');
await exited;

const gaps = (rendition: string): number[] =>
  fs
    .readFileSync(path.join(dataDir, 'channels', 'atk', 'segments', rendition, 'index.ndjson'), 'utf8')
    .split('\n')
    .filter((l) => l.includes('"kind":"gap"'))
    .map((l) => (JSON.parse(l) as { mediaSequence: number }).mediaSequence);
const lost = { '180p': gaps('180p'), '90p': gaps('90p') };
console.log(
  JSON.stringify({
    limit,
    connections,
    seconds: holdMs / 1000,
    reconnect: v.reconnect,
    segmentsLost: lost['180p'].length + lost['90p'].length,
    lost,
    publishFailed: output.split('\n').filter((l) => l.startsWith('publish-failed')).length,
    viewer: { answered, failed },
  }),
);
fs.rmSync(dataDir, { recursive: true, force: true });
