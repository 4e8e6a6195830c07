/** TURN REST API credentials: time-limited, per peer, never the long-term secret. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { io } from 'socket.io-client';
import { Tracker } from '../../tracker/index.ts';
import { peertv } from '../helpers/process.ts';
import { signedRegistration } from '../helpers/registration.ts';

const SECRET = 'coturn-static-auth-secret-0123';

test('join hands out TURN credentials by the TURN REST API scheme', async () => {
  const tracker = new Tracker({
    iceServers: [{ urls: 'stun:127.0.0.1:3478' }],
    turn: { urls: ['turn:127.0.0.1:3479?transport=udp'], secret: SECRET, ttlS: 600 },
  });
  await tracker.listen(0);
  const src = io(tracker.url, { transports: ['websocket'], forceNew: true });
  const peer = io(tracker.url, { transports: ['websocket'], forceNew: true });
  try {
    const ack = <T>(s: ReturnType<typeof io>, ev: string, p: unknown) =>
      new Promise<T>((resolve) => s.emit(ev, p, (a: T) => resolve(a)));
    await ack(
      src,
      'source:register',
      signedRegistration('demo', {
        title: 'demo',
        renditions: [{ name: '480p', width: 854, height: 480, bandwidthBps: 1_500_000 }],
      }),
    );
    const before = Math.floor(Date.now() / 1000);
    const joined = await ack<{
      ok: boolean;
      peerId: string;
      iceServers: { urls: unknown; username?: string; credential?: string }[];
    }>(peer, 'join', {
      protocolVersion: 1,
      channel: 'demo',
      kind: 'browser',
      rendition: '480p',
      uploadKbps: 1000,
    });
    assert.ok(joined.ok);
    assert.deepEqual(joined.iceServers[0], { urls: 'stun:127.0.0.1:3478' });
    const turn = joined.iceServers[1]!;
    assert.deepEqual(turn.urls, ['turn:127.0.0.1:3479?transport=udp']);
    const [expiry, who] = turn.username!.split(':');
    assert.equal(who, joined.peerId, 'credentials are per peer');
    assert.ok(Number(expiry) >= before + 600 && Number(expiry) <= before + 602, `expiry ${expiry}`);
    assert.equal(turn.credential, crypto.createHmac('sha1', SECRET).update(turn.username!).digest('base64'));
    assert.ok(!JSON.stringify(joined).includes(SECRET), 'the secret never leaves the tracker');
  } finally {
    src.close();
    peer.close();
    await tracker.destroy();
  }
});

test('TURN settings are checked', async () => {
  assert.throws(
    () => new Tracker({ turn: { urls: ['turn:127.0.0.1'], secret: 'short', ttlS: 600 } }),
    /secret/,
  );
  assert.throws(() => new Tracker({ turn: { urls: ['turn:127.0.0.1'], secret: SECRET, ttlS: 5 } }), /ttlS/);
  for (const args of [
    ['--turn-url', 'turn:127.0.0.1:3479'],
    ['--turn-url', 'stun:127.0.0.1', '--turn-secret', SECRET],
  ]) {
    const r = await peertv(['tracker', ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr.trim(), /^peertv tracker: [^\n]*turn/);
  }
});
