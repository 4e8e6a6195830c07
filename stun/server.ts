/**
 * A STUN Binding server (RFC 8489) over UDP and TCP.
 *
 * Every datagram / TCP frame is parsed strictly at the edge; malformed packets and anything but a
 * request are dropped silently and counted. Binding requests are answered with XOR-MAPPED-ADDRESS,
 * SOFTWARE and FINGERPRINT; MESSAGE-INTEGRITY(-SHA256) is checked against short-term credentials
 * where present (401 when it fails), unknown comprehension-required attributes get 420.
 *
 * TCP framing is plain STUN (no RFC 4571 length prefix): the 20-byte header gives the length.
 *
 * RFC 5780 (NAT behaviour discovery, §7): with an `alternate` address and port, UDP listens on all
 * four combinations (primary/alternate address × primary/alternate port). Binding responses then carry
 * RESPONSE-ORIGIN (where the response is sent from) and OTHER-ADDRESS (the address and port a
 * response would come from with both change flags: the diagonal of the socket the request reached,
 * so the alternate address and port for requests to the primary one), and CHANGE-REQUEST is honoured
 * by answering from the socket with the other address and/or port. Without `alternate` (and over TCP
 * when a change flag is set) CHANGE-REQUEST cannot be honoured: the server understands the attribute,
 * so 420 would be wrong; it answers 400 with the reason "change request not supported" instead.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import createDebug from 'debug';
import { TypedEmitter, type StunErrorCode } from '../protocol/index.ts';
import {
  STUN_ATTR,
  STUN_ERROR_REASON,
  STUN_HEADER_BYTES,
  STUN_MAGIC_COOKIE,
  STUN_METHOD,
  encodeStunMessage,
  findAttribute,
  parseStunMessage,
  shortTermKey,
  unmapIpv4,
  verifyIntegrity,
  type StunAddress,
  type StunAttribute,
  type StunMessage,
  type StunParseFailure,
} from './message.ts';

const debug = createDebug('peertv:stun');

export interface StunServerOptions {
  /** Address to bind (UDP and TCP). */
  host: string;
  /** Port for both transports (0 = any: TCP then tries UDP's port first). */
  port: number;
  udp: boolean;
  tcp: boolean;
  /** SOFTWARE attribute of every response ('' = none). */
  software: string;
  /** Short-term credentials: username → password. Integrity is checked where a request carries it. */
  credentials: ReadonlyMap<string, string>;
  /** Answer 400 to requests without MESSAGE-INTEGRITY(-SHA256) and USERNAME. */
  requireIntegrity: boolean;
  /** Per-source-address token bucket (requests per second, burst); 0 = unlimited. */
  ratePerS: number;
  rateBurst: number;
  /** Larger UDP datagrams / TCP frames are dropped (a TCP connection is then closed). */
  maxMessageBytes: number;
  maxTcpConnections: number;
  tcpIdleTimeoutMs: number;
  /**
   * RFC 5780 alternate address and port (UDP only); must differ from `host` and `port` (0 = any).
   * Absent: no OTHER-ADDRESS / RESPONSE-ORIGIN, and CHANGE-REQUEST gets 400.
   */
  alternate?: { host: string; port: number };
}

export const DEFAULT_STUN_SERVER: StunServerOptions = {
  host: '127.0.0.1',
  port: 3478,
  udp: true,
  tcp: true,
  software: 'PeerTV STUN',
  credentials: new Map(),
  requireIntegrity: false,
  ratePerS: 50,
  rateBurst: 100,
  // Room for RFC 5780 fragmentation tests (a request padded to about 1500 bytes, plus its header).
  maxMessageBytes: 2048,
  maxTcpConnections: 1000,
  tcpIdleTimeoutMs: 30_000,
};

export type StunTransport = 'udp' | 'tcp';

/** Stable reasons for a silently dropped packet (README: error codes). */
export type StunDropReason =
  'malformed' | 'not-request' | 'rate-limited' | 'oversized' | 'tcp-bad-framing' | 'tcp-connection-limit';

export interface StunRequestInfo {
  transport: StunTransport;
  source: StunAddress;
  method: number;
  /** 200 for a success response, else the error code sent. */
  status: number;
  username?: string;
}

export interface StunDropInfo {
  transport: StunTransport;
  source: { address: string; port: number };
  reason: StunDropReason;
  /** For 'malformed': the parser's reason. */
  parseFailure?: StunParseFailure;
}

export type StunServerEvents = {
  request: (info: StunRequestInfo) => void;
  dropped: (info: StunDropInfo) => void;
  /** A socket failed at run time (code 'stun-socket-error'); the server keeps serving what it can. */
  error: (info: { code: StunErrorCode; transport: StunTransport; error: Error }) => void;
};

export interface StunCounters {
  received: number;
  /** Responses sent, by status (200, 400, 401, 420). */
  responses: Record<number, number>;
  dropped: Record<StunDropReason, number>;
  tcpConnections: number;
}

export interface StunServerPorts {
  udp?: number;
  tcp?: number;
  /** The alternate UDP port, when `alternate` is configured. */
  alternate?: number;
}

/** UDP socket slots with `alternate`: bit 1 = alternate address, bit 0 = alternate port. */
const SLOT_CHANGE_IP = 2;
const SLOT_CHANGE_PORT = 1;
/** ERROR-CODE reason of the 400 answered to a CHANGE-REQUEST the server cannot honour. */
const CHANGE_UNSUPPORTED = 'change request not supported';
/** Tries to find a free port pair when `port` / `alternate.port` is 0. */
const MAX_PORT_PAIR_ATTEMPTS = 20;

interface Context {
  transport: StunTransport;
  source: StunAddress;
  /** The server's own address this request arrived at. */
  local: { address: string; port: number };
  /** UDP: the socket slot the request arrived at (see SLOT_CHANGE_IP). */
  slot?: number;
  /** UDP: the slot to answer from (set by #answer for CHANGE-REQUEST). */
  replySlot?: number;
  /** UDP: the port to answer to at the source address (RFC 5780 RESPONSE-PORT). */
  replyPort?: number;
}

/** Token buckets keyed by source address, bounded in number. */
class SourceBuckets {
  readonly #buckets = new Map<string, { tokens: number; lastMs: number }>();
  constructor(
    readonly ratePerS: number,
    readonly burst: number,
    readonly maxSources = 100_000,
  ) {}

  take(key: string): boolean {
    if (this.ratePerS <= 0) return true;
    const now = performance.now();
    let b = this.#buckets.get(key);
    if (!b) {
      if (this.#buckets.size >= this.maxSources) this.sweep(now);
      if (this.#buckets.size >= this.maxSources) return false;
      this.#buckets.set(key, (b = { tokens: this.burst, lastMs: now }));
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.lastMs) / 1000) * this.ratePerS);
    b.lastMs = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Forgets buckets idle long enough to be full again. */
  sweep(now = performance.now()): void {
    const idleMs = (this.burst / this.ratePerS) * 1000;
    for (const [k, b] of this.#buckets) if (now - b.lastMs > idleMs) this.#buckets.delete(k);
  }
}

export class StunServer extends TypedEmitter<StunServerEvents> {
  readonly options: StunServerOptions;
  readonly counters: StunCounters = {
    received: 0,
    responses: {},
    dropped: {
      malformed: 0,
      'not-request': 0,
      'rate-limited': 0,
      oversized: 0,
      'tcp-bad-framing': 0,
      'tcp-connection-limit': 0,
    },
    tcpConnections: 0,
  };
  /** Bound addresses once listening. */
  readonly addresses: { udp?: net.AddressInfo; tcp?: net.AddressInfo; alternate?: net.AddressInfo } = {};
  /** UDP sockets by slot: [primary, primary address + alternate port, alternate address + primary port, alternate]. */
  #udp: (dgram.Socket | undefined)[] = [];
  #tcp: net.Server | undefined;
  readonly #tcpSockets = new Set<net.Socket>();
  readonly #buckets: SourceBuckets;
  #sweepTimer: NodeJS.Timeout | undefined;
  #listening = false;
  #destroyed: Promise<void> | undefined;

  constructor(options: Partial<StunServerOptions> = {}) {
    super();
    const o = (this.options = { ...DEFAULT_STUN_SERVER, ...options });
    if (!o.udp && !o.tcp) throw new RangeError('StunServer needs udp or tcp (or both)');
    if (!net.isIP(o.host)) throw new TypeError(`host must be an IP address (got "${o.host}")`);
    if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new RangeError(`bad port ${o.port}`);
    if (o.ratePerS < 0 || (o.ratePerS > 0 && o.rateBurst < 1))
      throw new RangeError('ratePerS must be >= 0 and rateBurst >= 1 when rate limiting');
    if (o.maxMessageBytes < STUN_HEADER_BYTES || o.maxMessageBytes > 65535 + STUN_HEADER_BYTES)
      throw new RangeError('maxMessageBytes out of range');
    if (o.requireIntegrity && o.credentials.size === 0)
      throw new RangeError('requireIntegrity needs at least one credential');
    if (Buffer.byteLength(o.software) > 763) throw new RangeError('software is over 763 bytes');
    if (o.alternate) {
      const a = o.alternate;
      if (!net.isIP(a.host) || net.isIP(a.host) !== net.isIP(o.host) || a.host === o.host)
        throw new TypeError(`alternate.host must be another IP address of the same family (got "${a.host}")`);
      if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535)
        throw new RangeError(`bad alternate port ${a.port}`);
      if (a.port !== 0 && a.port === o.port) throw new RangeError('alternate.port must differ from port');
    }
    this.#buckets = new SourceBuckets(o.ratePerS, o.rateBurst);
  }

  get destroyed(): boolean {
    return this.#destroyed !== undefined;
  }

  /** Binds the sockets; resolves with the bound ports. */
  async listen(): Promise<StunServerPorts> {
    if (this.#listening || this.#destroyed)
      throw new Error('StunServer.listen() may be called once, before destroy()');
    this.#listening = true;
    const o = this.options;
    try {
      if (o.udp) await (o.alternate ? this.#listenUdpQuad(o.alternate) : this.#listenUdp(o.port));
      if (o.tcp) {
        const udpPort = this.addresses.udp?.port;
        if (o.port === 0 && udpPort !== undefined) {
          try {
            await this.#listenTcp(udpPort);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
            await this.#listenTcp(0);
          }
        } else await this.#listenTcp(o.port);
      }
    } catch (err) {
      await this.destroy();
      throw err;
    }
    if (this.#destroyed) {
      // Destroyed while binding: what came up after destroy() must not stay bound.
      const tcp = this.#tcp;
      await Promise.all([
        this.#closeUdp(),
        new Promise<void>((resolve) => (tcp?.listening ? tcp.close(() => resolve()) : resolve())),
      ]);
      throw new Error('StunServer destroyed while listening');
    }
    if (o.ratePerS > 0) {
      this.#sweepTimer = setInterval(() => this.#buckets.sweep(), 30_000);
      this.#sweepTimer.unref();
    }
    debug('listening udp=%o tcp=%o', this.addresses.udp, this.addresses.tcp);
    return {
      udp: this.addresses.udp?.port,
      tcp: this.addresses.tcp?.port,
      ...(this.addresses.alternate && { alternate: this.addresses.alternate.port }),
    };
  }

  async #listenUdp(port: number): Promise<void> {
    this.addresses.udp = (await this.#bindUdp(this.options.host, port, 0)).address();
  }

  /** RFC 5780: binds the four address × port sockets, retrying for a free pair when a port is 0. */
  async #listenUdpQuad(alt: { host: string; port: number }): Promise<void> {
    const o = this.options;
    const anyPort = o.port === 0 || alt.port === 0;
    for (let attempt = 1; ; attempt++) {
      try {
        const primary = (await this.#bindUdp(o.host, o.port, 0)).address().port;
        const other = (await this.#bindUdp(alt.host, alt.port, SLOT_CHANGE_IP | SLOT_CHANGE_PORT)).address()
          .port;
        if (other === primary)
          throw Object.assign(new Error('alternate port equals primary port'), { code: 'EADDRINUSE' });
        await this.#bindUdp(o.host, other, SLOT_CHANGE_PORT);
        await this.#bindUdp(alt.host, primary, SLOT_CHANGE_IP);
        this.addresses.udp = this.#udp[0]!.address();
        this.addresses.alternate = this.#udp[SLOT_CHANGE_IP | SLOT_CHANGE_PORT]!.address();
        return;
      } catch (err) {
        await this.#closeUdp();
        if (
          !anyPort ||
          (err as NodeJS.ErrnoException).code !== 'EADDRINUSE' ||
          attempt >= MAX_PORT_PAIR_ATTEMPTS
        )
          throw err;
        debug('port pair busy, retrying (%d)', attempt);
      }
    }
  }

  #bindUdp(host: string, port: number, slot: number): Promise<dgram.Socket> {
    // A 1 MiB receive buffer (the kernel caps it at net.core.rmem_max) rides out bursts that the
    // default (~208 KiB) drops before the event loop gets to them.
    const sock = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4', recvBufferSize: 1 << 20 });
    this.#udp[slot] = sock;
    return new Promise((resolve, reject) => {
      // Closed by destroy() before it is bound: the bind callback never comes.
      const onClose = () => reject(new Error('StunServer destroyed while listening'));
      sock.once('error', reject);
      sock.once('close', onClose);
      sock.bind(port, host, () => {
        sock.off('error', reject);
        sock.off('close', onClose);
        sock.on('error', (error) =>
          this.emit('error', { code: 'stun-socket-error', transport: 'udp', error }),
        );
        sock.on('message', (msg, rinfo) => this.#onDatagram(msg, rinfo, slot));
        resolve(sock);
      });
    });
  }

  #closeUdp(): Promise<void> {
    const socks = this.#udp.filter((s): s is dgram.Socket => s !== undefined);
    this.#udp = [];
    return Promise.all(
      socks.map(
        (udp) =>
          new Promise<void>((resolve) => {
            try {
              udp.close(() => resolve());
            } catch {
              resolve(); // never bound, or already closed
            }
          }),
      ),
    ).then(() => undefined);
  }

  #listenTcp(port: number): Promise<void> {
    const server = net.createServer((s) => this.#onConnection(s));
    this.#tcp = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.options.host, () => {
        server.off('error', reject);
        server.on('error', (error) =>
          this.emit('error', { code: 'stun-socket-error', transport: 'tcp', error }),
        );
        this.addresses.tcp = server.address() as net.AddressInfo;
        resolve();
      });
    });
  }

  /**
   * Closes every socket (UDP slots, the TCP listener and its connections) and stops the sweep timer.
   * Idempotent: every call returns the same promise.
   */
  destroy(): Promise<void> {
    if (this.#destroyed) return this.#destroyed;
    clearInterval(this.#sweepTimer);
    const tcp = this.#tcp;
    for (const s of this.#tcpSockets) s.destroy();
    this.#tcpSockets.clear();
    this.#destroyed = Promise.all([
      this.#closeUdp(),
      new Promise<void>((resolve) => (tcp?.listening ? tcp.close(() => resolve()) : resolve())),
    ]).then(() => debug('destroyed'));
    return this.#destroyed;
  }

  #drop(
    transport: StunTransport,
    source: { address: string; port: number },
    reason: StunDropReason,
    parseFailure?: StunParseFailure,
  ): undefined {
    this.counters.dropped[reason]++;
    debug(
      'dropped %s packet from %s:%d: %s %s',
      transport,
      source.address,
      source.port,
      reason,
      parseFailure ?? '',
    );
    this.emit('dropped', { transport, source, reason, ...(parseFailure && { parseFailure }) });
    return undefined;
  }

  #onDatagram(msg: Buffer, rinfo: dgram.RemoteInfo, slot: number): void {
    if (this.#destroyed) return;
    this.counters.received++;
    const src = { address: rinfo.address, port: rinfo.port };
    if (msg.length > this.options.maxMessageBytes) return this.#drop('udp', src, 'oversized');
    const local = this.#slotAddress(slot);
    if (!local) return;
    const ctx: Context = { transport: 'udp', source: toStunAddress(rinfo.address, rinfo.port), local, slot };
    const reply = this.#handle(msg, ctx);
    if (reply) this.#udp[ctx.replySlot ?? slot]?.send(reply, ctx.replyPort ?? rinfo.port, rinfo.address);
  }

  /** The bound address of a UDP slot, undefined once closed. */
  #slotAddress(slot: number): StunAddress | undefined {
    try {
      const a = this.#udp[slot]?.address();
      return a ? toStunAddress(a.address, a.port) : undefined;
    } catch {
      return undefined; // closed meanwhile
    }
  }

  #onConnection(socket: net.Socket): void {
    const src = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    if (this.#destroyed || this.#tcpSockets.size >= this.options.maxTcpConnections) {
      this.#drop('tcp', src, 'tcp-connection-limit');
      socket.destroy();
      return;
    }
    this.#tcpSockets.add(socket);
    this.counters.tcpConnections++;
    socket.setTimeout(this.options.tcpIdleTimeoutMs, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.#tcpSockets.delete(socket));
    const ctx: Context = {
      transport: 'tcp',
      source: toStunAddress(src.address, src.port),
      local: { address: socket.localAddress ?? '', port: socket.localPort ?? 0 },
    };
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      if (this.#destroyed || socket.destroyed) return;
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      while (pending.length >= 4) {
        // Validate what the header tells before waiting for more bytes: a bad frame ends the connection.
        const length = pending.readUInt16BE(2);
        const bad =
          (pending[0]! & 0xc0) !== 0 ||
          length % 4 !== 0 ||
          (pending.length >= 8 && pending.readUInt32BE(4) !== STUN_MAGIC_COOKIE);
        if (bad) {
          this.counters.received++;
          this.#drop('tcp', src, 'tcp-bad-framing');
          socket.destroy();
          return;
        }
        const total = STUN_HEADER_BYTES + length;
        if (total > this.options.maxMessageBytes) {
          this.counters.received++;
          this.#drop('tcp', src, 'oversized');
          socket.destroy();
          return;
        }
        if (pending.length < total) return;
        const frame = pending.subarray(0, total);
        pending = pending.subarray(total);
        this.counters.received++;
        const reply = this.#handle(frame, ctx);
        if (reply && !socket.destroyed) socket.write(reply);
      }
    });
  }

  /** Answers one message, or returns undefined to drop it (already counted). */
  #handle(bytes: Uint8Array, ctx: Context): Uint8Array | undefined {
    try {
      return this.#answer(bytes, ctx);
    } catch (err) {
      // Defence in depth: a bug must cost one answer, never the server.
      debug('failed to answer %s:%d: %s', ctx.source.address, ctx.source.port, (err as Error).stack);
      return undefined;
    }
  }

  #answer(bytes: Uint8Array, ctx: Context): Uint8Array | undefined {
    const src = { address: ctx.source.address, port: ctx.source.port };
    if (!this.#buckets.take(ctx.source.address)) return this.#drop(ctx.transport, src, 'rate-limited');
    const parsed = parseStunMessage(bytes);
    if (!parsed.ok) return this.#drop(ctx.transport, src, 'malformed', parsed.reason);
    const req = parsed.message;
    if (req.class !== 'request') return this.#drop(ctx.transport, src, 'not-request');

    // Authentication (RFC 8489 §9.1.3), then comprehension (§6.3.1).
    let key: Uint8Array | undefined;
    let alg: 'sha1' | 'sha256' = 'sha1';
    const username = findAttribute(req, STUN_ATTR.USERNAME, 'text')?.text;
    const hasIntegrity = !!(req.messageIntegrity || req.messageIntegritySha256);
    if (hasIntegrity) {
      if (username === undefined)
        return this.#error(req, ctx, 400, undefined, 'MESSAGE-INTEGRITY without USERNAME');
      const password = this.options.credentials.get(username);
      alg = req.messageIntegritySha256 ? 'sha256' : 'sha1';
      if (password === undefined) return this.#error(req, ctx, 401, undefined, 'unknown username', username);
      const k = shortTermKey(password);
      if (!verifyIntegrity(req, k, alg))
        return this.#error(req, ctx, 401, undefined, 'integrity check failed', username);
      key = k;
    } else if (this.options.requireIntegrity) {
      return this.#error(req, ctx, 400, undefined, 'integrity required');
    }
    if (req.unknownRequired.length > 0) {
      const types = [...new Set(req.unknownRequired)];
      const names = types.map((t) => `0x${t.toString(16).padStart(4, '0')}`).join(', ');
      return this.#error(req, ctx, 420, { key, alg }, `unknown attribute(s) ${names}`, username, [
        { kind: 'unknown-attributes', type: STUN_ATTR.UNKNOWN_ATTRIBUTES, types },
      ]);
    }
    if (req.method !== STUN_METHOD.binding)
      return this.#error(req, ctx, 400, { key, alg }, 'unsupported method', username);

    // RFC 5780 §7: CHANGE-REQUEST, RESPONSE-ORIGIN, OTHER-ADDRESS.
    const change = findAttribute(req, STUN_ATTR.CHANGE_REQUEST, 'change-request');
    const alt = this.options.alternate ? this.#rfc5780(ctx, change) : undefined;
    if ((change && !this.options.alternate) || alt === null)
      return this.#error(req, ctx, 400, { key, alg }, CHANGE_UNSUPPORTED, username, [], CHANGE_UNSUPPORTED);
    // RFC 5780 §6.1: RESPONSE-PORT (UDP only) sends the answer to that port at the source address;
    // PADDING is answered with PADDING of the same length; both together are a bad request.
    const responsePort = findAttribute(req, STUN_ATTR.RESPONSE_PORT, 'raw');
    const padding = findAttribute(req, STUN_ATTR.PADDING, 'raw');
    if (responsePort && padding)
      return this.#error(req, ctx, 400, { key, alg }, 'PADDING with RESPONSE-PORT', username);
    if (responsePort) {
      const port = (responsePort.value[0]! << 8) | responsePort.value[1]!;
      if (ctx.transport !== 'udp')
        return this.#error(req, ctx, 400, { key, alg }, 'RESPONSE-PORT over TCP', username);
      if (port === 0) return this.#error(req, ctx, 400, { key, alg }, 'RESPONSE-PORT 0', username);
      ctx.replyPort = port;
    }
    const attributes: StunAttribute[] = [
      { kind: 'address', type: STUN_ATTR.XOR_MAPPED_ADDRESS, address: ctx.source },
      ...(alt ?? []),
      ...this.#software(),
      ...(padding
        ? [{ kind: 'raw' as const, type: STUN_ATTR.PADDING, value: new Uint8Array(padding.value.length) }]
        : []),
    ];
    this.#count(200);
    this.emit('request', {
      transport: ctx.transport,
      source: ctx.source,
      method: req.method,
      status: 200,
      ...(username !== undefined && key && { username }),
    });
    return encodeStunMessage(
      { class: 'success', method: req.method, transactionId: req.transactionId, attributes },
      { ...(key && { integrityKey: key, integrity: alg }), fingerprint: true },
    );
  }

  /**
   * RESPONSE-ORIGIN and OTHER-ADDRESS for a response (setting `ctx.replySlot` for CHANGE-REQUEST);
   * null when a change flag cannot be honoured (TCP).
   */
  #rfc5780(
    ctx: Context,
    change: { changeIp: boolean; changePort: boolean } | undefined,
  ): StunAttribute[] | null {
    const flip = (change?.changeIp ? SLOT_CHANGE_IP : 0) | (change?.changePort ? SLOT_CHANGE_PORT : 0);
    let origin: StunAddress | undefined;
    let other: StunAddress | undefined;
    if (ctx.slot !== undefined) {
      ctx.replySlot = ctx.slot ^ flip;
      origin = this.#slotAddress(ctx.replySlot);
      other = this.#slotAddress(ctx.slot ^ (SLOT_CHANGE_IP | SLOT_CHANGE_PORT));
    } else {
      if (flip !== 0) return null;
      origin = toStunAddress(ctx.local.address, ctx.local.port);
      other = this.#slotAddress(SLOT_CHANGE_IP | SLOT_CHANGE_PORT);
    }
    if (!origin) return null;
    return [
      { kind: 'address', type: STUN_ATTR.RESPONSE_ORIGIN, address: origin },
      ...(other ? [{ kind: 'address' as const, type: STUN_ATTR.OTHER_ADDRESS, address: other }] : []),
    ];
  }

  #software(): StunAttribute[] {
    return this.options.software
      ? [{ kind: 'text', type: STUN_ATTR.SOFTWARE, text: this.options.software }]
      : [];
  }

  #count(status: number): void {
    this.counters.responses[status] = (this.counters.responses[status] ?? 0) + 1;
  }

  #error(
    req: StunMessage,
    ctx: Context,
    code: number,
    auth: { key: Uint8Array | undefined; alg: 'sha1' | 'sha256' } | undefined,
    why?: string,
    username?: string,
    extra: StunAttribute[] = [],
    /** ERROR-CODE reason phrase (default: the standard one for `code`). */
    phrase?: string,
  ): Uint8Array {
    this.#count(code);
    debug('%d to %s:%d: %s', code, ctx.source.address, ctx.source.port, why ?? STUN_ERROR_REASON[code]);
    this.emit('request', {
      transport: ctx.transport,
      source: ctx.source,
      method: req.method,
      status: code,
      ...(username !== undefined && { username }),
    });
    const attributes: StunAttribute[] = [
      {
        kind: 'error-code',
        type: STUN_ATTR.ERROR_CODE,
        code,
        reason: phrase ?? STUN_ERROR_REASON[code] ?? 'Error',
      },
      ...extra,
      ...this.#software(),
    ];
    return encodeStunMessage(
      { class: 'error', method: req.method, transactionId: req.transactionId, attributes },
      { ...(auth?.key && { integrityKey: auth.key, integrity: auth.alg }), fingerprint: true },
    );
  }
}

function toStunAddress(address: string, port: number): StunAddress {
  const a = unmapIpv4(address.split('%')[0]!);
  return { family: net.isIPv6(a) ? 'IPv6' : 'IPv4', address: a, port };
}
