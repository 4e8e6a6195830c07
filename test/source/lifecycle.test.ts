/**
 * The source process's lifecycle: Ctrl-C ends the broadcast properly (viewers see its end, the
 * recording is finalized and printed), ffmpeg never outlives its source, and a data directory is used by
 * one source at a time.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHttpFetcher } from '../../peer/index.ts';
import { ChannelStore, ConfigError } from '../../source/index.ts';
import { ROOT } from '../helpers/process.ts';
import { tempDir } from '../helpers/source.ts';
import {
  findEncoder,
  isGone,
  readStat,
  SourceProcess,
  tinySourceArgs,
  TINY_LADDER_FLAG,
  waitGone,
} from '../helpers/source-process.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `p`'s value, or 'timeout' after `ms` (the timer does not outlive the race). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}
const fetcher = createHttpFetcher();
const decoder = new TextDecoder();

const started: SourceProcess[] = [];
const dirs: string[] = [];
const source = (args: string[], opts?: ConstructorParameters<typeof SourceProcess>[1]): SourceProcess => {
  const p = new SourceProcess(args, opts);
  started.push(p);
  return p;
};
const dataDir = (): string => {
  const d = tempDir('peertv-lifecycle-');
  dirs.push(d);
  return d;
};

after(() => {
  for (const p of started) p.kill();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** GETs a text; undefined when the origin does not answer (closed, refused). */
async function getText(url: string): Promise<{ status: number; text: string } | undefined> {
  try {
    const r = await fetcher.get(url, { signal: AbortSignal.timeout(10_000) });
    return { status: r.status, text: decoder.decode(r.bytes) };
  } catch {
    return undefined;
  }
}

/** Resolves once the live playlist of `rendition` lists at least `count` segments. */
async function playlistWith(
  base: string,
  count: number,
  rendition = '180p',
  timeoutMs = 60_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await getText(`${base}/live/${rendition}.m3u8`);
    if (r?.status === 200 && r.text.split('\n').filter((l) => l.endsWith('.ts')).length >= count)
      return r.text;
    if (Date.now() > deadline) throw new Error(`the live playlist did not reach ${count} segments`);
    await sleep(300);
  }
}

const newestSeq = (playlist: string): number => {
  const uris = playlist.split('\n').filter((l) => l.endsWith('.ts'));
  return Number(/(\d+)\.ts$/.exec(uris[uris.length - 1] ?? '')?.[1] ?? -1);
};

const broadcastRecord = (dir: string, channel: string, id: string): { endedAtMs: number | null } =>
  JSON.parse(fs.readFileSync(path.join(dir, 'channels', channel, 'broadcasts', `${id}.json`), 'utf8')) as {
    endedAtMs: number | null;
  };

/** The command `npm start` runs the CLI with (package.json: `… && <runner> demo`). */
function npmStartRunner(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  const m = /&&\s*(.+?)\s+demo\s*$/.exec(pkg.scripts.start ?? '');
  assert.ok(m, `unexpected start script: ${pkg.scripts.start}`);
  return m[1]!;
}

describe('Ctrl-C (SIGINT to the terminal’s process group)', () => {
  test('the first one ends the broadcast even when the source is busy: viewers see ENDLIST, the recording is finalized and its URL printed, no ffmpeg is left', async () => {
    const dir = dataDir();
    // Run the CLI exactly as `npm start` does, as a terminal runs a foreground job: its own process group.
    const sp = source(tinySourceArgs(dir, 'life'), { runner: npmStartRunner(), detached: true });
    const base = await sp.channelUrl('life');
    await playlistWith(base, 3);
    const encoder = await findEncoder(sp.pid);
    const sourcePid = encoder.ppid;

    // A viewer polls the live playlist until it ends.
    let sawEnd = false;
    let lastPlaylist = '';
    const viewer = (async () => {
      while (sp.running && !sawEnd) {
        const r = await getText(`${base}/live/180p.m3u8`);
        if (r?.status === 200) {
          lastPlaylist = r.text;
          sawEnd = r.text.includes('#EXT-X-ENDLIST');
        }
        await sleep(300);
      }
    })();

    // Ctrl-C while the source's event loop is busy for a moment (a loaded machine): stop it, signal
    // the whole group like a terminal does, let it run again.
    process.kill(sourcePid, 'SIGSTOP');
    process.kill(-sp.pid, 'SIGINT');
    await sleep(300);
    try {
      process.kill(sourcePid, 'SIGCONT');
    } catch {
      /* killed meanwhile (a wrapper that relays signals may SIGKILL a source that does not answer) */
    }

    const exit = await within(sp.exited, 90_000);
    await viewer;
    if (exit === 'timeout') assert.fail(`still running 90 s after SIGINT:\n${sp.output}`);
    const ended = /^broadcast (\S+) ended; recording: (http:\/\/\S+\/recordings\/(\S+)\/master\.m3u8)$/m.exec(
      sp.output,
    );
    assert.ok(ended, `no recording URL printed:\n${sp.output}`);
    assert.equal(ended[3], ended[1]);
    assert.equal(sp.output.match(/^stopping:/gm)?.length, 1, sp.output);
    assert.doesNotMatch(sp.output, /again: exiting now|encoder-crashed|publish-failed/);
    const record = broadcastRecord(dir, 'life', ended[1]!);
    assert.equal(typeof record.endedAtMs, 'number', 'the recording is finalized');
    assert.ok(sawEnd, `the viewer never saw ENDLIST; last playlist:\n${lastPlaylist}`);
    assert.ok(await waitGone(encoder.pid, 5000), `ffmpeg ${encoder.pid} is still running`);
    assert.ok(await waitGone(sourcePid, 5000), 'the source exited');
    assert.ok(!fs.existsSync(path.join(dir, 'channels', 'life', 'source.lock')), 'the lock is released');
  });

  test('a second one exits at once', async () => {
    const dir = dataDir();
    const sp = source(tinySourceArgs(dir, 'twice'), { detached: true });
    const base = await sp.channelUrl('twice');
    await playlistWith(base, 2);
    const encoder = await findEncoder(sp.pid);
    // A viewer that keeps polling keeps the origin serving after the end (up to --linger, 30 s).
    let polling = true;
    const viewer = (async () => {
      while (polling) {
        await getText(`${base}/live/180p.m3u8`);
        await sleep(200);
      }
    })();
    process.kill(-sp.pid, 'SIGINT');
    await sp.waitFor(/^letting viewers reach the end/m, 30_000);
    process.kill(-sp.pid, 'SIGINT');
    const exit = await within(sp.exited, 10_000);
    polling = false;
    await viewer;
    if (exit === 'timeout') assert.fail('the second SIGINT did not exit at once');
    assert.equal(exit.code, 130);
    assert.match(sp.output, /^SIGINT again: exiting now$/m);
    assert.ok(await waitGone(encoder.pid, 5000), `ffmpeg ${encoder.pid} is still running`);
  });
});

describe('ffmpeg never outlives its source', () => {
  test('a source killed with SIGKILL takes its encoder with it; the next start takes over its stale lock and finalizes its broadcast', async () => {
    const dir = dataDir();
    const sp = source(tinySourceArgs(dir, 'killed'));
    const base = await sp.channelUrl('killed');
    await playlistWith(base, 2);
    const id = (await sp.waitFor(/^broadcast (\S+) started$/m))[1]!;
    const encoder = await findEncoder(sp.pid);
    process.kill(sp.pid, 'SIGKILL');
    await sp.exited;
    assert.ok(await waitGone(encoder.pid, 5000), `ffmpeg ${encoder.pid} outlived its source`);
    const lock = path.join(dir, 'channels', 'killed', 'source.lock');
    assert.ok(fs.existsSync(lock), 'a SIGKILL leaves the lock behind');
    assert.equal(broadcastRecord(dir, 'killed', id).endedAtMs, null);

    const next = source(tinySourceArgs(dir, 'killed'));
    await next.channelUrl('killed');
    assert.equal(
      typeof broadcastRecord(dir, 'killed', id).endedAtMs,
      'number',
      'the cut-off broadcast is finalized',
    );
    assert.equal((JSON.parse(fs.readFileSync(lock, 'utf8')) as { pid: number }).pid, next.pid);
    process.kill(next.pid, 'SIGINT');
    assert.equal((await next.exited).code, 0, next.output);
  });
});

describe('a data directory is used by one source at a time', () => {
  test('a second `peertv source` on it (its port in use too) is refused before it touches anything', async () => {
    const dir = dataDir();
    const first = source(tinySourceArgs(dir, 'locked'));
    const base = await first.channelUrl('locked');
    const port = new URL(base).port;
    await playlistWith(base, 2);
    const id = (await first.waitFor(/^broadcast (\S+) started$/m))[1]!;
    const work = path.join(dir, 'channels', 'locked', 'work');
    const runsBefore = fs.readdirSync(work);
    assert.ok(runsBefore.length > 0, 'the encoder works in a run folder');
    const encoder = await findEncoder(first.pid);

    const second = source([
      'source',
      '--channel',
      'locked',
      '--port',
      port,
      '--data-dir',
      dir,
      '--ladder',
      TINY_LADDER_FLAG,
    ]);
    const exit = await second.exited;
    assert.equal(exit.code, 2, second.output);
    const lines = second.output.trim().split('\n');
    assert.equal(lines.length, 1, second.output);
    assert.match(
      lines[0]!,
      new RegExp(`^peertv source: .*in use by another peertv source \\(pid ${first.pid}\\)`),
    );
    assert.ok(lines[0]!.includes(path.join(dir, 'channels', 'locked')), lines[0]);

    // The running channel did not notice: same encoder, same work folder, still live and publishing.
    assert.deepEqual(fs.readdirSync(work), runsBefore);
    assert.ok(!isGone(encoder.pid), 'the encoder still runs');
    assert.equal(broadcastRecord(dir, 'locked', id).endedAtMs, null);
    const seq = newestSeq(await playlistWith(base, 1));
    const deadline = Date.now() + 30_000;
    while (newestSeq(await playlistWith(base, 1)) < seq + 2) {
      assert.ok(Date.now() < deadline, 'publication continues');
      await sleep(300);
    }
    assert.doesNotMatch(first.output, /encoder-crashed|publish-failed/);
    process.kill(first.pid, 'SIGINT');
    assert.equal((await first.exited).code, 0, first.output);
  });

  test('in one process: a second store on an open directory is refused, and opens once the first is destroyed', () => {
    const dir = dataDir();
    const a = new ChannelStore(dir, 'chan');
    assert.throws(
      () => new ChannelStore(dir, 'chan'),
      (err: Error) =>
        err instanceof ConfigError &&
        err.message.includes(path.join(dir, 'channels', 'chan')) &&
        err.message.includes(`this process (pid ${process.pid})`),
    );
    const other = new ChannelStore(dir, 'other'); // another channel of the same data directory
    other.destroy();
    a.destroy();
    a.destroy(); // idempotent
    const b = new ChannelStore(dir, 'chan');
    b.destroy();
    assert.ok(!fs.existsSync(path.join(dir, 'channels', 'chan', 'source.lock')));
  });

  test('a lock of a process that is gone, or of a reused pid, is taken over; one of a running process is refused', async () => {
    const dir = dataDir();
    const lockFile = path.join(dir, 'channels', 'chan', 'source.lock');
    fs.mkdirSync(path.dirname(lockFile), { recursive: true });
    const writeLock = (pid: number, startTicks: string | null) =>
      fs.writeFileSync(lockFile, `${JSON.stringify({ pid, host: os.hostname(), startTicks })}\n`);
    const ticks = (pid: number): string =>
      fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19]!;

    // A process that has exited.
    const done = spawn(process.execPath, ['-e', '']);
    await new Promise((r) => done.on('exit', r));
    writeLock(done.pid!, null);
    const s1 = new ChannelStore(dir, 'chan');
    assert.equal((JSON.parse(fs.readFileSync(lockFile, 'utf8')) as { pid: number }).pid, process.pid);
    s1.destroy();

    // A running process.
    const alive = spawn('sleep', ['60']);
    try {
      await new Promise((r) => alive.on('spawn', r));
      assert.ok(readStat(alive.pid!));
      writeLock(alive.pid!, ticks(alive.pid!));
      assert.throws(
        () => new ChannelStore(dir, 'chan'),
        (err: Error) => err instanceof ConfigError && err.message.includes(`(pid ${alive.pid})`),
      );
      assert.ok(fs.existsSync(lockFile), 'a live lock is left alone');
      // The same pid, but a process that started at another time: the pid was reused.
      writeLock(alive.pid!, String(Number(ticks(alive.pid!)) - 1));
      const s2 = new ChannelStore(dir, 'chan');
      s2.destroy();
    } finally {
      alive.kill('SIGKILL');
    }
  });
});
