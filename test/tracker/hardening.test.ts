/**
 * The tracker's answers to the hardening probe: channel ownership pinned to the channel's key across a
 * kill -9, signed single-use registrations, limits on new channels, channels that never go live
 * expiring, directory pushes of what changed, every event counted, rendition flips limited and their
 * pushes coalesced, and quarantine of a peer its neighbours complained about.
 */
import { test, describe, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import {
  TRACKER_PROTOCOL_VERSION,
  type ChannelInfo,
  type ChannelRegistration,
  type DirectoryUpdate,
  type JoinResult,
  type NeighboursUpdate,
} from '../../protocol/index.ts';
import { ChannelSigner } from '../../source/index.ts';
import { pinFilePath } from '../../tracker/index.ts';
import { ROOT } from '../helpers/process.ts';
import { signedRegistration } from '../helpers/registration.ts';
import { startTracker, stopTrackers } from '../helpers/tracker-fixture.ts';
import { Client, clients, code, connect, emptyReport, ok, until } from '../helpers/tracker-clients.ts';

// ---------------------------------------------------------------- helpers

const put = (url: string, reg: ChannelRegistration) =>
  fetch(`${url}/api/channels/${reg.channel}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(reg),
  });

async function putCode(url: string, reg: ChannelRegistration): Promise<[number, string]> {
  const res = await put(url, reg);
  const body = (await res.json()) as { ok: boolean; error?: { code: string } };
  return [res.status, body.ok ? 'ok' : body.error!.code];
}

const joinReq = (channel: string, rendition = '180p') => ({
  protocolVersion: TRACKER_PROTOCOL_VERSION,
  channel,
  kind: 'node',
  mode: 'viewer',
  rendition,
  uploadKbps: 1000,
  natType: 'unknown',
});

async function joinAs(url: string, channel: string, rendition = '180p'): Promise<Client> {
  const c = await connect(url);
  const res = ok(await c.ask<JoinResult>('join', joinReq(channel, rendition)));
  c.peerId = res.peerId;
  c.join = res;
  return c;
}

const report = (rendition: string) => emptyReport({ rendition });

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'peertv-hardening-'));

/** `peertv tracker` as a child process (so it can really be killed with SIGKILL). */
async function trackerProcess(args: string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'cli/main.ts', 'tracker', '--port', '0', ...args],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' } },
  );
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tracker did not start: ${stderr}`)), 60_000);
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /^tracker: (http:\/\/\S+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (c) => reject(new Error(`tracker exited (${c}): ${stderr}`)));
  });
  return { child, url };
}

const killHard = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });

const children: ChildProcess[] = [];

afterEach(() => {
  for (const c of clients.splice(0)) c.socket.disconnect();
});

after(async () => {
  for (const c of children) await killHard(c);
  await stopTrackers();
});

// ---------------------------------------------------------------- ownership

describe('channel ownership', () => {
  test('a channel stays pinned to its key across kill -9 of the tracker: another key is refused first thing after the restart', async () => {
    const dataDir = tempDir();
    const owner = ChannelSigner.generate();
    const attacker = ChannelSigner.generate();
    const first = await trackerProcess(['--data-dir', dataDir]);
    const claim = signedRegistration('demo', { title: 'The real demo' }, owner);
    assert.deepEqual(await putCode(first.url, claim), [200, 'ok']);
    await killHard(first.child);

    const second = await trackerProcess(['--data-dir', dataDir]);
    // The attacker is first after the restart, with its own key, origin and title: refused.
    const hijack = signedRegistration('demo', { title: 'Pwned', originUrl: 'http://127.0.0.1:1' }, attacker);
    assert.deepEqual(await putCode(second.url, hijack), [403, 'unauthorized']);
    // The captured genuine registration, replayed: refused (single-use).
    assert.deepEqual(await putCode(second.url, claim), [409, 'registration-replayed']);
    // The real source comes back with a fresh signed registration: accepted, and its key is what
    // viewers are told.
    assert.deepEqual(
      await putCode(second.url, signedRegistration('demo', { title: 'The real demo' }, owner)),
      [200, 'ok'],
    );
    const info = (await (await fetch(`${second.url}/api/channels/demo`)).json()) as ChannelInfo;
    assert.equal(info.publicKey, owner.publicKey);
    assert.equal(info.title, 'The real demo');
    await killHard(second.child);

    // The operator moves the channel to a new key on purpose.
    const third = await trackerProcess(['--data-dir', dataDir, '--release-channel', 'demo']);
    const moved = signedRegistration('demo', { title: 'Moved' }, attacker);
    assert.deepEqual(await putCode(third.url, moved), [200, 'ok']);
    assert.deepEqual(
      await putCode(third.url, signedRegistration('demo', {}, owner)),
      [403, 'unauthorized'],
      'the old key lost it',
    );
    await killHard(third.child);
    const pins = JSON.parse(fs.readFileSync(pinFilePath(dataDir), 'utf8')) as {
      pins: Record<string, { publicKey: string }>;
    };
    assert.equal(pins.pins.demo?.publicKey, attacker.publicKey);
  });

  test('registrations must be signed by the key they name, fresh, and newer than the last', async () => {
    const t = await startTracker();
    const reg = signedRegistration('signed');
    assert.deepEqual(await putCode(t.url, { ...reg, title: 'Tampered' }), [403, 'unauthorized']);
    assert.deepEqual(
      await putCode(t.url, {
        ...reg,
        signature: reg.signature.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')),
      }),
      [403, 'unauthorized'],
    );
    assert.deepEqual(
      await putCode(t.url, signedRegistration('signed', { signedAtMs: Date.now() - 3_600_000 })),
      [409, 'registration-expired'],
    );
    assert.deepEqual(await putCode(t.url, reg), [200, 'ok']);
    assert.deepEqual(await putCode(t.url, reg), [409, 'registration-replayed']);
    const older = signedRegistration('signed', { signedAtMs: reg.signedAtMs - 1 });
    assert.deepEqual(await putCode(t.url, older), [409, 'registration-replayed']);
    // Over socket.io too; the socket does not become the channel's source.
    const s = await connect(t.url);
    assert.equal(code(await s.ask('source:register', reg)), 'registration-replayed');
    ok(await s.ask('source:register', signedRegistration('signed')));
  });

  test('two claims of one new channel id at once: exactly one key wins', async () => {
    const t = await startTracker();
    const keys = Array.from({ length: 6 }, () => ChannelSigner.generate());
    const results = await Promise.all(
      keys.map((k) => putCode(t.url, signedRegistration('contested', {}, k))),
    );
    assert.equal(results.filter(([s]) => s === 200).length, 1, JSON.stringify(results));
    const winner = keys[results.findIndex(([s]) => s === 200)]!;
    assert.equal((await t.channelInfo('contested'))?.publicKey, winner.publicKey);
  });

  test('new channels are rate-limited per address; owners updating theirs are not', async () => {
    const t = await startTracker({
      ownership: { maxClockSkewMs: 600_000, claimsPerHour: 1, claimBurst: 3, maxChannels: 100 },
    });
    for (const id of ['c1', 'c2', 'c3'])
      assert.deepEqual(await putCode(t.url, signedRegistration(id)), [200, 'ok']);
    assert.deepEqual(await putCode(t.url, signedRegistration('c4')), [429, 'rate-limited']);
    for (let i = 0; i < 5; i++)
      assert.deepEqual(await putCode(t.url, signedRegistration('c1', { title: `update ${i}` })), [200, 'ok']);
    assert.equal(await t.channelInfo('c4'), undefined);
  });

  test('a channel that never went live expires once its source is gone; a live one stays', async () => {
    const t = await startTracker({ idleChannelTtlMs: 400 });
    const expired: string[] = [];
    t.on('channel-expired', (id) => expired.push(id));
    const idleSource = await connect(t.url);
    ok(
      await idleSource.ask(
        'source:register',
        signedRegistration('waiting', { status: 'idle', livePlaylist: null }),
      ),
    );
    assert.deepEqual(
      await putCode(t.url, signedRegistration('never', { status: 'idle', livePlaylist: null })),
      [200, 'ok'],
    );
    assert.deepEqual(await putCode(t.url, signedRegistration('onair', { status: 'live' })), [200, 'ok']);
    await until('the REST-only idle channel expires', async () => expired.includes('never'));
    assert.equal(await t.channelInfo('never'), undefined);
    assert.equal(await t.store.getPin('never'), undefined, 'its id is free again');
    assert.ok(await t.channelInfo('waiting'), 'a connected source keeps its idle channel');
    assert.ok(await t.channelInfo('onair'), 'a channel that went live stays');
    idleSource.socket.disconnect();
    await until('the idle channel expires once its source left', async () => expired.includes('waiting'));
    assert.deepEqual(
      await putCode(t.url, signedRegistration('never', {}, ChannelSigner.generate())),
      [200, 'ok'],
      'anyone may claim an expired id',
    );
    assert.ok(await t.channelInfo('onair'));
  });
});

// ---------------------------------------------------------------- directory and floods

describe('pushes and floods', () => {
  test('a registration pushes only the entry that changed to directory watchers', async () => {
    const t = await startTracker({
      ownership: { maxClockSkewMs: 600_000, claimsPerHour: 3600, claimBurst: 1000, maxChannels: 1000 },
    });
    const watcher = await connect(t.url);
    ok(await watcher.ask('watch', {}));
    const n = 60;
    for (let i = 0; i < n; i++)
      assert.deepEqual(await putCode(t.url, signedRegistration(`dir-${i}`)), [200, 'ok']);
    await until(
      'every channel pushed',
      async () =>
        new Set(watcher.seen<DirectoryUpdate>('directory-update').flatMap((u) => u.upsert.map((c) => c.id)))
          .size === n,
    );
    const pushes = watcher.seen<DirectoryUpdate>('directory-update');
    const entries = pushes.reduce((sum, u) => sum + u.upsert.length, 0);
    // Whole-directory pushes would have sent n(n+1)/2 = 1830 entries.
    assert.ok(entries <= n + pushes.length, `${entries} entries in ${pushes.length} pushes`);
    const bytes = pushes.reduce((sum, u) => sum + JSON.stringify(u).length, 0);
    assert.ok(bytes < n * 2000, `${bytes} bytes pushed for ${n} registrations`);
  });

  test('unknown events count against the rate limit; a flooder is cut off and honest peers are served', async () => {
    const t = await startTracker();
    assert.deepEqual(await putCode(t.url, signedRegistration('busy')), [200, 'ok']);
    const flooder = await connect(t.url);
    const gone = flooder.closed(30_000);
    const junk = 'x'.repeat(1024);
    for (let i = 0; i < 5000 && flooder.socket.connected; i++) {
      flooder.socket.emit(`evil-${i % 50}`, junk);
      if (i % 500 === 0) await new Promise((r) => setImmediate(r));
    }
    const honest = await joinAs(t.url, 'busy');
    ok(await honest.ask('report', report('180p')));
    await gone;
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(metrics, /peertv_tracker_rate_limited_total\{event="unknown"\} [1-9]/);
  });

  test('rendition flips are limited per peer and neighbours get coalesced pushes', async () => {
    const t = await startTracker({ renditionSwitchesPerMinute: 1, renditionSwitchBurst: 2 });
    assert.deepEqual(await putCode(t.url, signedRegistration('flip')), [200, 'ok']);
    const flipper = await joinAs(t.url, 'flip', '180p');
    const others = [await joinAs(t.url, 'flip', '180p'), await joinAs(t.url, 'flip', '90p')];
    const renditions: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = i % 2 === 0 ? '90p' : '180p';
      ok(await flipper.ask('report', report(r)));
      renditions.push((await t.store.getPeer(flipper.peerId))!.rendition);
    }
    // Only the budget's switches were applied: 180p → 90p → 180p, then it stays.
    const switches = renditions.filter((r, i) => r !== (i === 0 ? '180p' : renditions[i - 1])).length;
    assert.equal(switches, 2, renditions.join(' '));
    await new Promise((r) => setTimeout(r, 200)); // the last coalesced pushes
    for (const o of others) {
      const n = o.seen<NeighboursUpdate>('neighbours').length;
      assert.ok(n <= 4, `a neighbour got ${n} pushes for 20 flips`);
    }
  });
});

// ---------------------------------------------------------------- complaints

describe('complaints about misbehaving peers', () => {
  test('a peer two of its neighbours complain about is introduced to no one; its address joins slowly', async () => {
    const t = await startTracker({
      targetNeighbours: 6,
      reputation: {
        quarantineAfterReporters: 2,
        penaltyMs: 60_000,
        penalizedJoinIntervalMs: 1500,
        maxPenalizedAddresses: 100,
      },
    });
    const quarantined: string[] = [];
    t.on('peer-quarantined', ({ id }) => quarantined.push(id));
    assert.deepEqual(await putCode(t.url, signedRegistration('rep')), [200, 'ok']);
    assert.deepEqual(await putCode(t.url, signedRegistration('elsewhere')), [200, 'ok']);
    const [bad, a, b, c] = [
      await joinAs(t.url, 'rep'),
      await joinAs(t.url, 'rep'),
      await joinAs(t.url, 'rep'),
      await joinAs(t.url, 'rep'),
    ];
    const stranger = await joinAs(t.url, 'elsewhere');
    // Not a neighbour, or not even in the channel: refused.
    assert.equal(
      code(await stranger.ask('report-peer', { peer: bad!.peerId, code: 'peer-over-budget' })),
      'other-channel',
    );
    assert.equal(
      code(await a!.ask('report-peer', { peer: 'not-a-peer-id', code: 'peer-over-budget' })),
      'invalid-input',
    );
    assert.equal(code(await a!.ask('report-peer', { peer: bad!.peerId, code: 'nonsense' })), 'invalid-input');
    // One complaint is not enough.
    ok(await a!.ask('report-peer', { peer: bad!.peerId, code: 'peer-over-budget' }));
    ok(await a!.ask('report-peer', { peer: bad!.peerId, code: 'peer-unresponsive' }));
    assert.equal((await t.store.getPeer(bad!.peerId))?.quarantined, false);
    ok(await b!.ask('report-peer', { peer: bad!.peerId, code: 'peer-sent-bad-segment' }));
    await until('quarantined', async () => quarantined.includes(bad!.peerId));
    const pushedBefore = bad!.seen('neighbours').length;
    const rec = (await t.store.getPeer(bad!.peerId))!;
    assert.deepEqual([rec.quarantined, rec.firstTier], [true, false]);
    assert.deepEqual(await t.store.linksOf(bad!.peerId), []);
    for (const x of [a!, b!, c!])
      await x.waitFor<NeighboursUpdate>('neighbours', (u) => u.remove.includes(bad!.peerId));
    // It can no longer signal anyone.
    assert.equal(
      code(await bad!.ask('signal', { to: c!.peerId, data: { type: 'offer', sdp: 'v=0' } })),
      'not-introduced',
    );
    // Its address: the next new identity right away is refused, one a moment later is let in...
    assert.equal(code(await (await connect(t.url)).ask('join', joinReq('rep'))), 'rate-limited');
    await new Promise((r) => setTimeout(r, 1600));
    const newcomer = await joinAs(t.url, 'rep');
    // ...and it is never introduced to the quarantined peer.
    assert.ok(!newcomer.join!.neighbours.includes(bad!.peerId));
    ok(await bad!.ask('report', report('180p')));
    const later = bad!.seen<NeighboursUpdate>('neighbours').slice(pushedBefore);
    assert.ok(!later.some((u) => u.add.length > 0), JSON.stringify(later));
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(metrics, /peertv_tracker_quarantined_peers_total 1/);
  });
});
