/** RFC 5780: a StunServer with an alternate (127.0.0.1 / 127.0.0.2), discoverNat, and the NatType mapping. */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import {
  STUN_ATTR,
  STUN_METHOD,
  StunServer,
  discoverNat,
  encodeStunMessage,
  findAttribute,
  natTypeFromBehaviour,
  parseStunMessage,
  randomTransactionId,
  type NatFiltering,
  type NatMapping,
  type StunAttribute,
  type StunMessage,
} from '../../stun/index.ts';

const PRIMARY = '127.0.0.1';
const ALTERNATE = '127.0.0.2';

function request(attributes: StunAttribute[] = []) {
  const transactionId = randomTransactionId();
  return {
    transactionId,
    bytes: encodeStunMessage({ class: 'request', method: STUN_METHOD.binding, transactionId, attributes }),
  };
}

function change(changeIp: boolean, changePort: boolean): StunAttribute {
  return { kind: 'change-request', type: STUN_ATTR.CHANGE_REQUEST, changeIp, changePort };
}

/** Sends one request from a fresh socket; resolves with the answer and where it came from. */
async function ask(
  host: string,
  port: number,
  attributes: StunAttribute[] = [],
): Promise<{ message: StunMessage; from: dgram.RemoteInfo; local: { address: string; port: number } }> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, PRIMARY, r));
  try {
    const { bytes } = request(attributes);
    const answer = new Promise<[Buffer, dgram.RemoteInfo]>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no answer')), 2000);
      sock.once('message', (m, r) => {
        clearTimeout(t);
        resolve([m, r]);
      });
    });
    sock.send(bytes, port, host);
    const [m, from] = await answer;
    const parsed = parseStunMessage(m);
    assert.ok(parsed.ok);
    return { message: parsed.message, from, local: sock.address() };
  } finally {
    sock.close();
  }
}

function addr(m: StunMessage, type: number) {
  const a = findAttribute(m, type, 'address')?.address;
  return a && `${a.address}:${a.port}`;
}

describe('StunServer with an alternate address (RFC 5780)', () => {
  let server: StunServer;
  let P = 0;
  let P2 = 0;

  before(async () => {
    server = new StunServer({ host: PRIMARY, port: 0, alternate: { host: ALTERNATE, port: 0 }, ratePerS: 0 });
    const ports = await server.listen();
    P = ports.udp!;
    P2 = ports.alternate!;
    assert.notEqual(P, P2);
  });
  after(() => server.destroy());

  test('each of the four sockets answers with RESPONSE-ORIGIN and OTHER-ADDRESS (its diagonal)', async () => {
    const sockets: [string, number, string][] = [
      [PRIMARY, P, `${ALTERNATE}:${P2}`],
      [PRIMARY, P2, `${ALTERNATE}:${P}`],
      [ALTERNATE, P, `${PRIMARY}:${P2}`],
      [ALTERNATE, P2, `${PRIMARY}:${P}`],
    ];
    for (const [host, port, other] of sockets) {
      const { message, from, local } = await ask(host, port);
      assert.equal(message.class, 'success');
      assert.equal(addr(message, STUN_ATTR.XOR_MAPPED_ADDRESS), `${local.address}:${local.port}`);
      assert.equal(addr(message, STUN_ATTR.RESPONSE_ORIGIN), `${host}:${port}`);
      assert.equal(addr(message, STUN_ATTR.OTHER_ADDRESS), other);
      assert.equal(`${from.address}:${from.port}`, `${host}:${port}`);
    }
  });

  test('CHANGE-REQUEST answers really come from the changed address and/or port', async () => {
    const cases: [boolean, boolean, string][] = [
      [false, false, `${PRIMARY}:${P}`],
      [false, true, `${PRIMARY}:${P2}`],
      [true, false, `${ALTERNATE}:${P}`],
      [true, true, `${ALTERNATE}:${P2}`],
    ];
    for (const [ip, port, expected] of cases) {
      const { message, from } = await ask(PRIMARY, P, [change(ip, port)]);
      assert.equal(message.class, 'success');
      assert.equal(`${from.address}:${from.port}`, expected, `changeIp=${ip} changePort=${port}`);
      assert.equal(addr(message, STUN_ATTR.RESPONSE_ORIGIN), expected);
      assert.equal(addr(message, STUN_ATTR.OTHER_ADDRESS), `${ALTERNATE}:${P2}`);
    }
    // From the alternate socket, a change goes back towards the primary one.
    const { from } = await ask(ALTERNATE, P2, [change(true, true)]);
    assert.equal(`${from.address}:${from.port}`, `${PRIMARY}:${P}`);
  });

  test('over TCP a change flag gets 400 "change request not supported"; a plain request gets the attributes', async () => {
    const tcpPort = server.addresses.tcp!.port;
    const exchange = (attributes: StunAttribute[]) =>
      new Promise<StunMessage>((resolve, reject) => {
        const s = net.connect(tcpPort, PRIMARY, () => s.write(request(attributes).bytes));
        s.once('data', (d) => {
          s.destroy();
          const r = parseStunMessage(d);
          if (r.ok) resolve(r.message);
          else reject(new Error(r.reason));
        });
        s.once('error', reject);
      });
    const bad = await exchange([change(true, false)]);
    assert.equal(bad.class, 'error');
    assert.deepEqual(
      (({ code, reason }) => ({ code, reason }))(findAttribute(bad, STUN_ATTR.ERROR_CODE, 'error-code')!),
      { code: 400, reason: 'change request not supported' },
    );
    const ok = await exchange([]);
    assert.equal(ok.class, 'success');
    assert.equal(addr(ok, STUN_ATTR.RESPONSE_ORIGIN), `${PRIMARY}:${tcpPort}`);
    assert.equal(addr(ok, STUN_ATTR.OTHER_ADDRESS), `${ALTERNATE}:${P2}`);
  });

  test('discoverNat on loopback: no NAT, endpoint-independent filtering → open', async () => {
    const r = await discoverNat({
      server: { host: PRIMARY, port: P },
      localAddress: PRIMARY,
      timeoutMs: 1000,
    });
    assert.equal(r.reachable, true);
    assert.equal(r.mapping, 'no-nat');
    assert.equal(r.filtering, 'endpoint-independent');
    assert.equal(r.natType, 'open');
    assert.equal(`${r.otherAddress?.address}:${r.otherAddress?.port}`, `${ALTERNATE}:${P2}`);
    assert.equal(r.mapped?.port, r.local?.port);
  });

  test('discoverNat without a local address still sees no NAT on loopback', async () => {
    const r = await discoverNat({ server: { host: PRIMARY, port: P }, timeoutMs: 1000 });
    assert.equal(r.natType, 'open');
  });
});

describe('StunServer without an alternate', () => {
  test('CHANGE-REQUEST gets 400 "change request not supported"; no RFC 5780 attributes', async () => {
    const server = new StunServer({ host: PRIMARY, port: 0, tcp: false });
    const { udp } = await server.listen();
    try {
      const { message } = await ask(PRIMARY, udp!, [change(false, true)]);
      assert.equal(message.class, 'error');
      const e = findAttribute(message, STUN_ATTR.ERROR_CODE, 'error-code');
      assert.equal(e?.code, 400);
      assert.equal(e?.reason, 'change request not supported');
      const plain = await ask(PRIMARY, udp!);
      assert.equal(addr(plain.message, STUN_ATTR.OTHER_ADDRESS), undefined);
      assert.equal(addr(plain.message, STUN_ATTR.RESPONSE_ORIGIN), undefined);
      // discovery: reachable, but behaviour unknown.
      const r = await discoverNat({
        server: { host: PRIMARY, port: udp! },
        localAddress: PRIMARY,
        timeoutMs: 500,
      });
      assert.deepEqual(
        [r.reachable, r.mapping, r.filtering, r.natType],
        [true, 'unknown', 'unknown', 'unknown'],
      );
    } finally {
      await server.destroy();
    }
  });

  test('bad alternate options are refused', () => {
    assert.throws(() => new StunServer({ host: PRIMARY, alternate: { host: PRIMARY, port: 1 } }), TypeError);
    assert.throws(() => new StunServer({ host: PRIMARY, alternate: { host: '::1', port: 1 } }), TypeError);
    assert.throws(
      () => new StunServer({ host: PRIMARY, port: 5000, alternate: { host: ALTERNATE, port: 5000 } }),
    );
  });
});

describe('natTypeFromBehaviour', () => {
  const mappings: (NatMapping | 'unknown')[] = [
    'no-nat',
    'endpoint-independent',
    'address-dependent',
    'address-and-port-dependent',
    'unknown',
  ];
  const filterings: (NatFiltering | 'unknown')[] = [
    'endpoint-independent',
    'address-dependent',
    'address-and-port-dependent',
    'unknown',
  ];
  const cone: Record<string, string> = {
    'endpoint-independent': 'full-cone',
    'address-dependent': 'restricted-cone',
    'address-and-port-dependent': 'port-restricted-cone',
    unknown: 'unknown',
  };
  for (const m of mappings)
    for (const f of filterings)
      test(`${m} / ${f}`, () => {
        assert.equal(natTypeFromBehaviour(false, m, f), 'udp-blocked');
        const expected =
          m === 'no-nat'
            ? 'open'
            : m === 'endpoint-independent'
              ? cone[f]
              : m === 'unknown'
                ? 'unknown'
                : 'symmetric';
        assert.equal(natTypeFromBehaviour(true, m, f), expected);
      });
});

/** A fake server: `reply` crafts the datagrams answered to each request. */
async function fakeServer(
  reply: (req: StunMessage, rinfo: dgram.RemoteInfo, port: number) => Uint8Array[],
): Promise<{ port: number; requests: StunMessage[]; close: () => Promise<void> }> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, PRIMARY, r));
  const port = sock.address().port;
  const requests: StunMessage[] = [];
  sock.on('message', (m, rinfo) => {
    const r = parseStunMessage(m);
    if (!r.ok) return;
    requests.push(r.message);
    for (const d of reply(r.message, rinfo, port)) sock.send(d, rinfo.port, rinfo.address);
  });
  return { port, requests, close: () => new Promise<void>((r) => sock.close(() => r())) };
}

function success(
  transactionId: Uint8Array,
  attributes: StunAttribute[],
  cls: 'success' | 'indication' = 'success',
) {
  return encodeStunMessage({ class: cls, method: STUN_METHOD.binding, transactionId, attributes });
}

describe('discoverNat against silent and hostile servers', () => {
  test('a server that never answers → udp-blocked within the timeout, with retransmissions', async () => {
    const fake = await fakeServer(() => []);
    try {
      const t0 = Date.now();
      const r = await discoverNat({
        server: { host: PRIMARY, port: fake.port },
        localAddress: PRIMARY,
        timeoutMs: 1200,
      });
      const elapsed = Date.now() - t0;
      assert.equal(r.natType, 'udp-blocked');
      assert.equal(r.reachable, false);
      assert.ok(elapsed >= 1100 && elapsed < 2500, `took ${elapsed} ms`);
      // Sent at 0, 500 and 1500 ms (RTO 500 ms doubling): two within 1200 ms.
      assert.equal(fake.requests.length, 2);
      assert.ok(
        fake.requests.every((q) => Buffer.from(q.transactionId).equals(fake.requests[0]!.transactionId)),
      );
    } finally {
      await fake.close();
    }
  });

  test('hostile answers are ignored (never thrown); a valid one after them still counts', async () => {
    const fake = await fakeServer((req, rinfo) => {
      const id = req.transactionId;
      const mapped: StunAttribute = {
        kind: 'address',
        type: STUN_ATTR.XOR_MAPPED_ADDRESS,
        address: { family: 'IPv4', address: rinfo.address, port: rinfo.port },
      };
      const truncated = Buffer.from(success(id, [mapped])).subarray(0, 30);
      const badLength = Buffer.from(success(id, [mapped]));
      badLength.writeUInt16BE(400, 2);
      const oneByte = Uint8Array.of(1);
      const headerOnly = Buffer.alloc(20);
      Buffer.from(id).copy(headerOnly, 8);
      return [
        oneByte,
        headerOnly, // not STUN (no magic cookie), but our transaction id
        truncated,
        badLength,
        success(randomTransactionId(), [mapped]), // someone else's transaction
        success(id, [mapped], 'indication'),
        success(id, []), // success without a mapped address
        encodeStunMessage({ class: 'success', method: 0x002, transactionId: id, attributes: [mapped] }),
        success(id, [mapped]), // finally a good one, without OTHER-ADDRESS
      ];
    });
    try {
      const r = await discoverNat({
        server: { host: PRIMARY, port: fake.port },
        localAddress: PRIMARY,
        timeoutMs: 800,
      });
      assert.equal(r.reachable, true);
      assert.equal(r.mapping, 'unknown');
      assert.equal(r.natType, 'unknown');
      assert.equal(r.mapped?.address, PRIMARY);
    } finally {
      await fake.close();
    }
  });

  test('only garbage → udp-blocked, no throw', async () => {
    const fake = await fakeServer((req) => {
      const g = Buffer.alloc(64, 0xff);
      Buffer.from(req.transactionId).copy(g, 8);
      return [g, Buffer.alloc(0), success(req.transactionId, [], 'indication')];
    });
    try {
      const r = await discoverNat({
        server: { host: PRIMARY, port: fake.port },
        localAddress: PRIMARY,
        timeoutMs: 500,
      });
      assert.equal(r.natType, 'udp-blocked');
    } finally {
      await fake.close();
    }
  });

  test('CHANGE-REQUEST answers from the unchanged source are ignored (filtering not faked)', async () => {
    const fake = await fakeServer((req, rinfo, port) => [
      success(req.transactionId, [
        {
          kind: 'address',
          type: STUN_ATTR.XOR_MAPPED_ADDRESS,
          address: { family: 'IPv4', address: rinfo.address, port: rinfo.port },
        },
        {
          kind: 'address',
          type: STUN_ATTR.OTHER_ADDRESS,
          address: { family: 'IPv4', address: ALTERNATE, port: port + 1 },
        },
      ]),
    ]);
    try {
      const r = await discoverNat({
        server: { host: PRIMARY, port: fake.port },
        localAddress: PRIMARY,
        timeoutMs: 400,
      });
      assert.equal(r.mapping, 'no-nat');
      assert.equal(r.filtering, 'address-and-port-dependent');
      assert.equal(
        fake.requests.filter((q) => findAttribute(q, STUN_ATTR.CHANGE_REQUEST, 'change-request')).length >= 2,
        true,
      );
    } finally {
      await fake.close();
    }
  });
});
