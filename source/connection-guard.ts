/**
 * How the origin protects the process it runs in. Every connection costs a file descriptor (two while
 * it is sent a segment), and publication needs descriptors too (segment files, indexes, ffmpeg's pipes,
 * file watchers, the tracker link): the guard keeps connections to what the descriptor limit leaves
 * after a reserve for publication, so no number of clients can starve publication. It also caps each
 * client address, closes the longest-idle connection to make room (as nginx reuses connections), times
 * out slow headers, slow requests and stalled responses, and answers pipelined requests one at a time.
 */
import { spawnSync } from 'node:child_process';
import type { ReadStream } from 'node:fs';
import fs from 'node:fs';
import http from 'node:http';
import type { Socket } from 'node:net';
import createDebug from 'debug';
import { addressBucket } from './address-bucket.ts';
import { ConfigError } from './config.ts';

const debug = createDebug('peertv:source:origin:connections');

export interface ConnectionGuardOptions {
  /**
   * Connections served at once. `'auto'`: (soft descriptor limit − `reservedFds`) / 2, at most 16 384.
   * At the cap a new connection closes the longest-idle one (keep-alive, or not sent a request yet), as
   * nginx reuses connections; when none is idle it is refused.
   */
  maxConnections: number | 'auto';
  /**
   * Connections one client address (an IPv4 address, an IPv6 /64) may hold. `'auto'`: a quarter of
   * `maxConnections` (at least 8); 0: no per-address cap (behind a CDN or reverse proxy, whose own
   * address every request comes from).
   */
  maxConnectionsPerAddress: number | 'auto';
  /** Descriptors left for publication and the rest of the process when the cap is derived. */
  reservedFds: number;
  /**
   * How long an idle keep-alive connection is kept. Longer than clients keep theirs (browsers, undici,
   * load balancers' 60 s), so a client never reuses a connection the origin is closing.
   */
  keepAliveTimeoutMs: number;
  /** A request's headers must arrive within this (also a new connection's first request): slowloris. */
  headersTimeoutMs: number;
  /** A whole request must arrive within this. */
  requestTimeoutMs: number;
  /** A connection with a request open and no byte moving either way for this long is closed (slow readers). */
  idleTimeoutMs: number;
  /** Requests pipelined on one connection before it is closed (they are answered one at a time). */
  maxPipelinedRequests: number;
}

export const DEFAULT_CONNECTION_GUARD: ConnectionGuardOptions = {
  maxConnections: 'auto',
  maxConnectionsPerAddress: 'auto',
  reservedFds: 256,
  keepAliveTimeoutMs: 65_000,
  headersTimeoutMs: 30_000,
  requestTimeoutMs: 60_000,
  idleTimeoutMs: 60_000,
  maxPipelinedRequests: 16,
};

/** Descriptors a connection may hold: its socket and the segment file it is being sent. */
const FDS_PER_CONNECTION = 2;
const MAX_AUTO_CONNECTIONS = 16_384;

/** The limits in force once the origin listens. */
export interface OriginLimits {
  maxConnections: number;
  /** 0: none. */
  maxConnectionsPerAddress: number;
  /** The process's soft RLIMIT_NOFILE when it was read (undefined where it cannot be read). */
  descriptorLimit: number | undefined;
}

/** What the origin did with connections (also under `connections` in `GET /stats`). */
export interface ConnectionStats {
  open: number;
  /** Turned away at the cap with none idle to close (total or per address). */
  refused: number;
  /** Idle connections closed to make room for a new one. */
  evicted: number;
  /** Connections closed for sending more pipelined requests than allowed. */
  pipelineOverflows: number;
  /** Most segment files open at once. */
  openFilesPeak: number;
}

/** The process's RLIMIT_NOFILE (Linux: /proc/self/limits; elsewhere `ulimit -n`); undefined if unknown. */
export function descriptorLimit(): { soft: number; hard: number } | undefined {
  const num = (v: string): number => (v === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(v));
  try {
    const line = fs
      .readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const m = line && /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(line);
    if (m) return { soft: num(m[1]!), hard: num(m[2]!) };
  } catch {
    /* not Linux */
  }
  const r = spawnSync('sh', ['-c', 'ulimit -Sn; ulimit -Hn'], { encoding: 'utf8' });
  const [soft, hard] = (r.stdout ?? '').trim().split('\n');
  if (r.status === 0 && soft && hard && /^(\d+|unlimited)$/.test(soft) && /^(\d+|unlimited)$/.test(hard))
    return { soft: num(soft), hard: num(hard) };
  return undefined;
}

/**
 * Raises the soft descriptor limit to the hard one (no privilege needed). Node does this itself at
 * start-up; this covers runtimes and embedders that do not. Returns the limit in force afterwards.
 */
export function raiseDescriptorLimit(): { soft: number; hard: number } | undefined {
  const before = descriptorLimit();
  if (!before || before.soft >= before.hard || before.hard === Number.MAX_SAFE_INTEGER) return before;
  const r = spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${before.hard}:${before.hard}`], {
    encoding: 'utf8',
  });
  if (r.status !== 0) debug('could not raise the descriptor limit: %s', r.stderr || r.error?.message);
  return descriptorLimit();
}

export function validateConnectionGuardOptions(o: ConnectionGuardOptions): void {
  const int = (name: string, v: number, min: number) => {
    if (!Number.isSafeInteger(v) || v < min)
      throw new ConfigError(`origin ${name} must be an integer of at least ${min} (got ${v})`);
  };
  if (o.maxConnections !== 'auto') int('maxConnections', o.maxConnections, 1);
  if (o.maxConnectionsPerAddress !== 'auto') int('maxConnectionsPerAddress', o.maxConnectionsPerAddress, 0);
  if (
    typeof o.maxConnections === 'number' &&
    typeof o.maxConnectionsPerAddress === 'number' &&
    o.maxConnectionsPerAddress > o.maxConnections
  )
    throw new ConfigError('origin maxConnectionsPerAddress must not exceed maxConnections');
  int('reservedFds', o.reservedFds, 0);
  int('keepAliveTimeoutMs', o.keepAliveTimeoutMs, 1);
  int('headersTimeoutMs', o.headersTimeoutMs, 1);
  int('requestTimeoutMs', o.requestTimeoutMs, 1);
  int('idleTimeoutMs', o.idleTimeoutMs, 1);
  int('maxPipelinedRequests', o.maxPipelinedRequests, 1);
  if (o.headersTimeoutMs > o.requestTimeoutMs)
    throw new ConfigError('origin headersTimeoutMs must not exceed requestTimeoutMs');
}

/** One client connection as the guard accounts for it. */
interface Conn {
  readonly socket: Socket;
  readonly bucket: string;
  /** Requests received and not yet answered (pipelined ones wait for the one before). */
  pending: number;
  /** The request being answered finishes: the next pipelined one may start. */
  turn: Promise<void>;
  /** Closes when the segment file being sent is closed. */
  file: Promise<void> | undefined;
}

/** Admits connections and requests to one HTTP server under the caps and timeouts above. */
export class ConnectionGuard {
  readonly #opts: ConnectionGuardOptions;
  #server: http.Server | undefined;
  #limits: OriginLimits | undefined;
  /** Every open connection. */
  readonly #conns = new Map<Socket, Conn>();
  /** Connections with no request open, longest idle first (a Set keeps insertion order). */
  readonly #idle = new Set<Conn>();
  readonly #perBucket = new Map<string, number>();
  readonly #stats: ConnectionStats = {
    open: 0,
    refused: 0,
    evicted: 0,
    pipelineOverflows: 0,
    openFilesPeak: 0,
  };
  #openFiles = 0;
  #destroyed: Promise<void> | undefined;

  constructor(opts: ConnectionGuardOptions) {
    validateConnectionGuardOptions(opts);
    this.#opts = opts;
  }

  /** The caps in force (undefined until a server is created). */
  get limits(): OriginLimits | undefined {
    return this.#limits && { ...this.#limits };
  }

  stats(): ConnectionStats {
    return { ...this.#stats, open: this.#conns.size };
  }

  /**
   * An HTTP server whose connections and requests this guard admits; `handler` sees the requests it
   * lets through, one at a time per connection. The caps are fixed now from the descriptor limit in
   * force: throws a ConfigError when the limit leaves no room for connections next to publication's
   * reserve. One server per guard.
   */
  createServer(handler: http.RequestListener): http.Server {
    if (this.#destroyed) throw new Error('connection guard was destroyed');
    if (this.#server) throw new Error('connection guard already has a server');
    const limits = this.#deriveLimits();
    const o = this.#opts;
    const server = http.createServer(
      {
        keepAliveTimeout: o.keepAliveTimeoutMs,
        headersTimeout: o.headersTimeoutMs,
        requestTimeout: o.requestTimeoutMs,
        // How often headers and request timeouts are checked (Node's default: every 30 s).
        connectionsCheckingInterval: Math.min(1000, o.headersTimeoutMs),
      },
      (req, res) => this.#admit(req, res, handler),
    );
    // Socket inactivity: fresh connections and requests whose response does not move (slow readers).
    server.timeout = o.idleTimeoutMs;
    server.on('connection', (socket: Socket) => this.#onConnection(socket));
    this.#server = server;
    this.#limits = limits;
    return server;
  }

  /** The server could not listen: forget it (a new one may be created). */
  abandon(server: http.Server): void {
    if (this.#server !== server) return;
    this.#server = undefined;
    this.#limits = undefined;
  }

  /** Accounts for a segment file sent on `req`'s connection: the next pipelined request waits for its close. */
  trackFile(req: http.IncomingMessage, stream: ReadStream): void {
    this.#openFiles++;
    this.#stats.openFilesPeak = Math.max(this.#stats.openFilesPeak, this.#openFiles);
    const conn = this.#conns.get(req.socket);
    const closed = new Promise<void>((resolve) =>
      stream.once('close', () => {
        this.#openFiles--;
        resolve();
      }),
    );
    if (conn) conn.file = closed;
  }

  /**
   * Stops accepting connections, closes idle ones (also those that never sent a request), lets requests
   * in progress finish for up to `graceMs`, then closes the rest. Idempotent: every call returns the
   * same promise.
   */
  destroy(graceMs = 0): Promise<void> {
    this.#destroyed ??= new Promise<void>((resolve) => {
      const server = this.#server;
      this.#server = undefined;
      this.#limits = undefined;
      if (!server) return resolve();
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      server.close(() => {
        clearTimeout(timer);
        this.#conns.clear();
        this.#idle.clear();
        this.#perBucket.clear();
        resolve();
      });
      server.closeIdleConnections();
      // Also those that never sent a request (Node counts them as active).
      for (const conn of [...this.#idle]) conn.socket.destroy();
      if (graceMs <= 0) server.closeAllConnections();
    });
    return this.#destroyed;
  }

  #deriveLimits(): OriginLimits {
    const o = this.#opts;
    const fds = descriptorLimit();
    const room = fds ? Math.floor((fds.soft - o.reservedFds) / FDS_PER_CONNECTION) : undefined;
    let max: number;
    if (o.maxConnections === 'auto') {
      if (room !== undefined && room < 1)
        throw new ConfigError(
          `the descriptor limit (${fds!.soft}) leaves no room for origin connections after the ${o.reservedFds} ` +
            'kept for publication: raise it (ulimit -n, systemd LimitNOFILE=)',
        );
      max = Math.min(MAX_AUTO_CONNECTIONS, room ?? 1024);
    } else {
      if (room !== undefined && o.maxConnections > room)
        throw new ConfigError(
          `${o.maxConnections} origin connections need up to ${o.maxConnections * FDS_PER_CONNECTION + o.reservedFds} ` +
            `descriptors with publication's reserve, but the limit is ${fds!.soft}: raise it (ulimit -n) or lower the cap`,
        );
      max = o.maxConnections;
    }
    const perAddress =
      o.maxConnectionsPerAddress === 'auto'
        ? Math.min(max, Math.max(8, Math.floor(max / 4)))
        : Math.min(max, o.maxConnectionsPerAddress);
    return { maxConnections: max, maxConnectionsPerAddress: perAddress, descriptorLimit: fds?.soft };
  }

  #onConnection(socket: Socket): void {
    const limits = this.#limits;
    if (!limits || this.#destroyed) {
      socket.destroy();
      return;
    }
    const bucket = addressBucket(socket.remoteAddress);
    // Per address first: an address at its cap makes room among its own idle connections only.
    const perAddress = limits.maxConnectionsPerAddress;
    if (perAddress > 0 && (this.#perBucket.get(bucket) ?? 0) >= perAddress && !this.#evictIdle(bucket)) {
      this.#refuse(socket, `${bucket} is at its ${perAddress} connections`);
      return;
    }
    if (this.#conns.size >= limits.maxConnections && !this.#evictIdle(undefined)) {
      this.#refuse(socket, `all ${limits.maxConnections} connections are busy`);
      return;
    }
    const conn: Conn = { socket, bucket, pending: 0, turn: Promise.resolve(), file: undefined };
    this.#conns.set(socket, conn);
    this.#idle.add(conn);
    this.#perBucket.set(bucket, (this.#perBucket.get(bucket) ?? 0) + 1);
    socket.once('close', () => this.#forget(conn));
  }

  /** Drops a connection from the accounts (once, whoever notices first). */
  #forget(conn: Conn): void {
    if (this.#conns.get(conn.socket) !== conn) return;
    this.#conns.delete(conn.socket);
    this.#idle.delete(conn);
    const n = (this.#perBucket.get(conn.bucket) ?? 1) - 1;
    if (n > 0) this.#perBucket.set(conn.bucket, n);
    else this.#perBucket.delete(conn.bucket);
  }

  /** Closes the longest-idle connection (of `bucket`, or of anyone); false when none is idle. */
  #evictIdle(bucket: string | undefined): boolean {
    for (const conn of this.#idle) {
      if (bucket !== undefined && conn.bucket !== bucket) continue;
      this.#forget(conn);
      conn.socket.destroy();
      this.#stats.evicted++;
      return true;
    }
    return false;
  }

  #refuse(socket: Socket, why: string): void {
    this.#stats.refused++;
    debug('refused a connection from %s: %s', socket.remoteAddress, why);
    socket.destroy();
  }

  /**
   * Answers the requests of one connection one at a time: a client that pipelines requests holds at
   * most one segment file open, like everyone else.
   */
  #admit(req: http.IncomingMessage, res: http.ServerResponse, handler: http.RequestListener): void {
    const conn = this.#conns.get(req.socket);
    if (!conn) {
      // Evicted or refused while its request was being parsed.
      res.destroy();
      return;
    }
    if (conn.pending >= this.#opts.maxPipelinedRequests) {
      this.#stats.pipelineOverflows++;
      req.socket.destroy();
      return;
    }
    conn.pending++;
    this.#idle.delete(conn);
    const previous = conn.turn;
    let done!: () => void;
    conn.turn = new Promise<void>((resolve) => (done = resolve));
    res.once('close', () => {
      // The next request starts once this one's segment file is closed too (fs closes it a moment later).
      const file = conn.file ?? Promise.resolve();
      conn.file = undefined;
      void file.then(() => {
        conn.pending--;
        done();
        // Idle again: the newest idle connection, last in line to be closed under pressure.
        if (conn.pending === 0 && this.#conns.get(conn.socket) === conn) this.#idle.add(conn);
      });
    });
    void previous.then(() => {
      if (!res.destroyed) handler(req, res);
    });
  }
}
