/** A real StunServer on 127.0.0.1 (UDP and TCP): binding, integrity, 420, garbage, and coturn's client. */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { execFile, execFileSync } from 'node:child_process';
import {
  STUN_ATTR,
  STUN_METHOD,
  StunServer,
  encodeStunMessage,
  findAttribute,
  parseStunMessage,
  randomTransactionId,
  shortTermKey,
  verifyIntegrity,
  type StunAttribute,
  type StunEncodeOptions,
  type StunMessage,
  type StunServerPorts,
} from '../../stun/index.ts';

const HOST = '127.0.0.1';

function request(attributes: StunAttribute[] = [], options: StunEncodeOptions = {}) {
  const transactionId = randomTransactionId();
  return {
    transactionId,
    bytes: encodeStunMessage(
      { class: 'request', method: STUN_METHOD.binding, transactionId, attributes },
      options,
    ),
  };
}

class UdpClient {
  readonly socket = dgram.createSocket('udp4');
  readonly #inbox: Buffer[] = [];
  #wake: (() => void) | undefined;
  port = 0;

  async open(): Promise<this> {
    await new Promise<void>((r) => this.socket.bind(0, HOST, r));
    this.port = this.socket.address().port;
    this.socket.on('message', (m) => {
      this.#inbox.push(m);
      this.#wake?.();
    });
    return this;
  }

  send(bytes: Uint8Array, port: number): void {
    this.socket.send(bytes, port, HOST);
  }

  async receive(timeoutMs = 2000): Promise<StunMessage> {
    const deadline = Date.now() + timeoutMs;
    while (this.#inbox.length === 0) {
      if (Date.now() > deadline) throw new Error('no UDP answer');
      await new Promise<void>((r) => {
        this.#wake = r;
        setTimeout(r, 50);
      });
    }
    const r = parseStunMessage(this.#inbox.shift()!);
    assert.ok(r.ok, r.ok ? '' : r.reason);
    return r.message;
  }

  get pending(): number {
    return this.#inbox.length;
  }

  close(): void {
    this.socket.close();
  }
}

function mapped(m: StunMessage) {
  return findAttribute(m, STUN_ATTR.XOR_MAPPED_ADDRESS, 'address')?.address;
}

describe('StunServer', () => {
  const server = new StunServer({
    host: HOST,
    port: 0,
    software: 'PeerTV STUN test',
    credentials: new Map([['alice', 'wonderland-pass']]),
    ratePerS: 1000,
    rateBurst: 1000,
  });
  let ports: StunServerPorts;
  let client: UdpClient;

  before(async () => {
    ports = await server.listen();
    client = await new UdpClient().open();
  });
  after(async () => {
    client.close();
    await server.destroy();
    await server.destroy(); // idempotent
  });

  test('listen() reports both ports', () => {
    assert.ok(ports.udp && ports.udp > 0);
    assert.ok(ports.tcp && ports.tcp > 0);
    assert.equal(server.addresses.udp?.address, HOST);
  });

  test('UDP binding request → success with XOR-MAPPED-ADDRESS, SOFTWARE and FINGERPRINT', async () => {
    const req = request();
    client.send(req.bytes, ports.udp!);
    const res = await client.receive();
    assert.equal(res.class, 'success');
    assert.equal(res.method, STUN_METHOD.binding);
    assert.deepEqual(res.transactionId, req.transactionId);
    assert.deepEqual(mapped(res), { family: 'IPv4', address: HOST, port: client.port });
    assert.equal(findAttribute(res, STUN_ATTR.SOFTWARE, 'text')?.text, 'PeerTV STUN test');
    assert.ok(res.fingerprint !== undefined, 'FINGERPRINT present and valid');
    assert.equal(res.messageIntegrity, undefined);
  });

  test('TCP binding request (two requests in one write, then one split across writes)', async () => {
    const sock = net.connect(ports.tcp!, HOST);
    await new Promise<void>((r) => sock.once('connect', r));
    const localPort = sock.localPort;
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    const a = request();
    const b = request();
    const c = request();
    sock.write(Buffer.concat([a.bytes, b.bytes]));
    sock.write(c.bytes.subarray(0, 7));
    await new Promise((r) => setTimeout(r, 30));
    sock.write(c.bytes.subarray(7));
    const deadline = Date.now() + 2000;
    let all = Buffer.alloc(0);
    const messages: StunMessage[] = [];
    while (messages.length < 3 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
      all = Buffer.concat([all, ...chunks.splice(0)]);
      while (all.length >= 20 && all.length >= 20 + all.readUInt16BE(2)) {
        const n = 20 + all.readUInt16BE(2);
        const r = parseStunMessage(all.subarray(0, n));
        assert.ok(r.ok);
        messages.push(r.message);
        all = all.subarray(n);
      }
    }
    sock.destroy();
    assert.equal(messages.length, 3);
    for (const [m, q] of messages.map((m, i) => [m, [a, b, c][i]!] as const)) {
      assert.deepEqual(m.transactionId, q.transactionId);
      assert.equal(m.class, 'success');
      assert.deepEqual(mapped(m), { family: 'IPv4', address: HOST, port: localPort });
      assert.ok(m.fingerprint !== undefined);
    }
  });

  test('integrity: good credentials → 200 with MESSAGE-INTEGRITY; bad or unknown → 401', async () => {
    const user = (u: string): StunAttribute => ({ kind: 'text', type: STUN_ATTR.USERNAME, text: u });
    const key = shortTermKey('wonderland-pass');
    for (const integrity of ['sha1', 'sha256'] as const) {
      client.send(
        request([user('alice')], { integrityKey: key, integrity, fingerprint: true }).bytes,
        ports.udp!,
      );
      const ok = await client.receive();
      assert.equal(ok.class, 'success');
      assert.ok(integrity === 'sha1' ? ok.messageIntegrity : ok.messageIntegritySha256);
      assert.ok(verifyIntegrity(ok, key), `${integrity} response integrity verifies`);
    }
    const bad = [
      request([user('alice')], { integrityKey: shortTermKey('wrong'), fingerprint: true }),
      request([user('mallory')], { integrityKey: key, fingerprint: true }),
    ];
    for (const r of bad) {
      client.send(r.bytes, ports.udp!);
      const res = await client.receive();
      assert.equal(res.class, 'error');
      assert.deepEqual(res.transactionId, r.transactionId);
      assert.equal(findAttribute(res, STUN_ATTR.ERROR_CODE, 'error-code')?.code, 401);
      assert.equal(res.messageIntegrity, undefined);
      assert.ok(res.fingerprint !== undefined);
    }
  });

  test('unknown comprehension-required attribute → 420 listing it', async () => {
    const r = request([
      { kind: 'raw', type: 0x7777, value: new Uint8Array([1, 2, 3]) },
      { kind: 'raw', type: 0xc001, value: new Uint8Array(0) },
    ]);
    client.send(r.bytes, ports.udp!);
    const res = await client.receive();
    assert.equal(res.class, 'error');
    assert.equal(findAttribute(res, STUN_ATTR.ERROR_CODE, 'error-code')?.code, 420);
    assert.deepEqual(findAttribute(res, STUN_ATTR.UNKNOWN_ATTRIBUTES, 'unknown-attributes')?.types, [0x7777]);
  });

  test('garbage and non-requests are dropped and counted; a good request right after is answered', async () => {
    const before = { ...server.counters.dropped };
    const drops: string[] = [];
    const onDrop = (d: { reason: string; parseFailure?: string }) =>
      drops.push(`${d.reason}/${d.parseFailure ?? ''}`);
    server.on('dropped', onDrop);
    const indication = encodeStunMessage({
      class: 'indication',
      method: STUN_METHOD.binding,
      transactionId: randomTransactionId(),
      attributes: [],
    });
    const badFp = request([], { fingerprint: true }).bytes;
    badFp[badFp.length - 1]! ^= 1;
    const garbage = [
      Buffer.from('GET / HTTP/1.1\r\n\r\n'),
      Buffer.alloc(0),
      Buffer.alloc(19, 0),
      indication,
      badFp,
      Buffer.alloc(3000),
    ];
    for (const g of garbage) client.send(g, ports.udp!);
    const good = request();
    client.send(good.bytes, ports.udp!);
    const res = await client.receive();
    assert.deepEqual(res.transactionId, good.transactionId, 'the first answer is the good request');
    server.off('dropped', onDrop);
    assert.equal(server.counters.dropped.malformed - before.malformed, 4);
    assert.equal(server.counters.dropped['not-request'] - before['not-request'], 1);
    assert.equal(server.counters.dropped.oversized - before.oversized, 1);
    assert.ok(drops.includes('malformed/bad-fingerprint'), drops.join());
    assert.equal(client.pending, 0);
  });

  test('TCP garbage closes that connection only', async () => {
    const sock = net.connect(ports.tcp!, HOST);
    await new Promise<void>((r) => sock.once('connect', r));
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    sock.on('error', () => {});
    sock.write('GET / HTTP/1.1\r\n\r\n');
    await closed;
    const good = request();
    client.send(good.bytes, ports.udp!);
    assert.deepEqual((await client.receive()).transactionId, good.transactionId);
  });

  test('RFC 5780 RESPONSE-PORT: the answer goes to that port at the source address; bad uses get 400', async () => {
    const other = await new UdpClient().open();
    try {
      const port = (p: number) => {
        const v = new Uint8Array(4);
        v[0] = p >> 8;
        v[1] = p & 0xff;
        return { kind: 'raw' as const, type: STUN_ATTR.RESPONSE_PORT, value: v };
      };
      const r = request([port(other.port)], { fingerprint: true });
      client.send(r.bytes, ports.udp!);
      const res = await other.receive();
      assert.equal(res.class, 'success');
      assert.deepEqual(res.transactionId, r.transactionId);
      // The mapped address is still the request's own source.
      assert.deepEqual(mapped(res), { family: 'IPv4', address: HOST, port: client.port });
      assert.equal(client.pending, 0, 'nothing to the requesting port');
      const code = async (attrs: StunAttribute[]) => {
        client.send(request(attrs).bytes, ports.udp!);
        return findAttribute(await client.receive(), STUN_ATTR.ERROR_CODE, 'error-code')?.code;
      };
      assert.equal(await code([port(0)]), 400, 'port 0');
      const padding = { kind: 'raw' as const, type: STUN_ATTR.PADDING, value: new Uint8Array(8) };
      assert.equal(await code([port(other.port), padding]), 400, 'with PADDING');
      // A wrong length is malformed: dropped, not answered.
      const before = server.counters.dropped.malformed;
      client.send(
        request([{ kind: 'raw', type: STUN_ATTR.RESPONSE_PORT, value: new Uint8Array(2) }]).bytes,
        ports.udp!,
      );
      await client.receive(300).catch(() => undefined);
      assert.equal(server.counters.dropped.malformed, before + 1);
    } finally {
      other.close();
    }
  });

  test('RFC 5780 PADDING: answered with PADDING of the same length; a 1500-byte padded request fits', async () => {
    for (const n of [4, 1500]) {
      const r = request([{ kind: 'raw', type: STUN_ATTR.PADDING, value: new Uint8Array(n).fill(0x41) }]);
      client.send(r.bytes, ports.udp!);
      const res = await client.receive();
      assert.equal(res.class, 'success');
      assert.equal(findAttribute(res, STUN_ATTR.PADDING, 'raw')?.value.length, n);
    }
  });

  test('coturn turnutils_stunclient sees its own reflexive address', async (t) => {
    let tool = '';
    try {
      tool = execFileSync('sh', ['-c', 'command -v turnutils_stunclient'], { encoding: 'utf8' }).trim();
    } catch {
      /* not installed */
    }
    if (!tool) return t.skip('turnutils_stunclient not installed (Debian package coturn); skipped');
    const out = await new Promise<string>((resolve) =>
      execFile(tool, ['-p', String(ports.udp), HOST], { timeout: 10_000 }, (_err, stdout, stderr) =>
        resolve(stdout + stderr),
      ),
    );
    assert.match(out, /UDP reflexive addr: 127\.0\.0\.1:\d+/, out);
    assert.ok(server.counters.responses[200]! > 0);
  });
});

test('rate limit: a source over its burst is dropped and counted', async () => {
  const server = new StunServer({ host: HOST, port: 0, tcp: false, ratePerS: 1, rateBurst: 3 });
  const { udp } = await server.listen();
  const client = await new UdpClient().open();
  try {
    for (let i = 0; i < 6; i++) client.send(request().bytes, udp!);
    for (let i = 0; i < 3; i++) assert.equal((await client.receive()).class, 'success');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(client.pending, 0);
    assert.equal(server.counters.dropped['rate-limited'], 3);
  } finally {
    client.close();
    await server.destroy();
  }
});

test('constructor rejects contradictions; listen() twice is misuse; destroy() before listen is fine', async () => {
  assert.throws(() => new StunServer({ udp: false, tcp: false }), RangeError);
  assert.throws(() => new StunServer({ host: 'localhost' }), TypeError);
  assert.throws(() => new StunServer({ requireIntegrity: true }), RangeError);
  const s = new StunServer({ host: HOST, port: 0 });
  await s.listen();
  await assert.rejects(s.listen());
  await s.destroy();
  await new StunServer().destroy();
});

test('destroy(): twice and concurrently is one teardown; TCP connections and UDP sockets are closed', async () => {
  const s = new StunServer({ host: HOST, port: 0 });
  const ports = await s.listen();
  const sock = net.connect(ports.tcp!, HOST);
  sock.on('error', () => {});
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  await new Promise<void>((r) => sock.once('connect', () => r()));
  const first = s.destroy();
  assert.equal(s.destroy(), first, 'concurrent calls share one promise');
  await first;
  assert.ok(s.destroyed);
  await closed; // the server closed the open TCP connection
  await s.destroy();
  // The UDP port is free again.
  const again = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    again.once('error', reject);
    again.bind(ports.udp!, HOST, () => resolve());
  });
  again.close();

  // Destroyed while binding: listen() fails and leaves nothing bound.
  const early = new StunServer({ host: HOST, port: 0 });
  const listening = early.listen();
  const destroyed = early.destroy();
  await assert.rejects(listening);
  await destroyed;
  assert.equal(early.destroy(), destroyed);
});
