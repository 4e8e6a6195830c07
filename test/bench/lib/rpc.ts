/**
 * Line-delimited JSON between a benchmark and its child processes, over the child's stdin/stdout.
 * Parent → child: `{"id":1,"cmd":"stats","args":{…}}`; child → parent: `{"id":1,"ok":true,"result":…}`
 * or `{"event":"progress",…}`. A child's stderr is the benchmark's stderr. Children are started
 * behind `bash -c 'ulimit -n …; exec node …'` (so the pid is node's) and are killed by pid when done,
 * on failure and when the benchmark exits.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

/** A child's commands: name → argument and result types. */
export type Commands = Record<string, { args: object; result: unknown }>;
export type Handlers<C extends Commands> = {
  [K in keyof C]: (args: C[K]['args']) => Promise<C[K]['result']> | C[K]['result'];
};

// ---------------------------------------------------------------- child side

/**
 * Serves `handlers` on stdin/stdout; returns `emit` for unsolicited events. When stdin closes (the
 * parent asked to stop, or went away) runs `onClose` and exits.
 */
export function serve<C extends Commands>(
  handlers: Handlers<C>,
  onClose: () => Promise<void> | void = () => {},
): { emit: (event: string, data?: object) => void } {
  const write = (msg: object) => process.stdout.write(`${JSON.stringify(msg)}\n`);
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    let msg: { id: number; cmd: string; args: object };
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch {
      return void process.stderr.write(`rpc: ignoring a line that is not JSON: ${line.slice(0, 200)}\n`);
    }
    const handler = handlers[msg.cmd] as ((args: object) => unknown) | undefined;
    if (!handler) return write({ id: msg.id, ok: false, error: `unknown command ${msg.cmd}` });
    Promise.resolve()
      .then(() => handler(msg.args ?? {}))
      .then(
        (result) => write({ id: msg.id, ok: true, result: result ?? null }),
        (err: Error) => write({ id: msg.id, ok: false, error: err?.stack ?? String(err) }),
      );
  });
  // The parent went away (or closed our stdin): nothing left to do.
  rl.on('close', () => {
    const bail = setTimeout(() => process.exit(0), 5000);
    bail.unref();
    Promise.resolve()
      .then(onClose)
      .finally(() => process.exit(0));
  });
  return { emit: (event, data = {}) => write({ ...data, event }) };
}

// ---------------------------------------------------------------- parent side

const live = new Set<RpcChild<Commands>>();
/** Kills every child still running (by pid). Also runs on exit. */
export function killAllChildren(): void {
  for (const c of live) c.kill();
}
process.on('exit', killAllChildren);

export interface RpcEvent {
  event: string;
  [key: string]: unknown;
}

/**
 * Open-file limit to give children: the hard limit, at most `want`. `soft` is the current soft limit.
 * `ulimit` is asked in bash, as the children are started through it.
 */
export function fileLimits(want = 65_536): { soft: number; hard: number; usable: number } {
  const ask = (flag: string) => {
    const out = spawnSync('bash', ['-c', `ulimit ${flag}`], { encoding: 'utf8' }).stdout.trim();
    return out === 'unlimited' ? Infinity : Number(out);
  };
  const soft = ask('-Sn');
  const hard = ask('-Hn');
  return { soft, hard, usable: Math.max(soft, Math.min(hard, want)) };
}

/** Ephemeral port range (connections from one address to one server port are bounded by it). */
export function ephemeralPorts(): number {
  try {
    const [lo, hi] = fs
      .readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    return hi! - lo! + 1;
  } catch {
    return 28_000;
  }
}

export class RpcChild<C extends Commands> {
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  #next = 1;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #listeners = new Set<(e: RpcEvent) => void>();
  #alive = true;
  #exitReason = '';

  /** Starts `node --import tsx <script>` (cwd `root`) with `nofile` open files allowed. */
  constructor(
    readonly name: string,
    script: string,
    opts: { root: string; nofile: number; nodeArgs?: string[]; args?: string[] },
  ) {
    const nofile = Number.isFinite(opts.nofile) ? String(opts.nofile) : 'unlimited';
    this.proc = spawn(
      'bash',
      [
        '-c',
        'ulimit -n "$0" || exit 97; exec "$@"',
        nofile,
        process.execPath,
        ...(opts.nodeArgs ?? []),
        '--import',
        'tsx',
        path.resolve(opts.root, script),
        ...(opts.args ?? []),
      ],
      { cwd: opts.root, stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, NODE_NO_WARNINGS: '1' } },
    );
    live.add(this);
    this.exited = new Promise((resolve) =>
      this.proc.once('exit', (code, signal) => {
        this.#alive = false;
        live.delete(this);
        this.#exitReason = `${name} (pid ${this.proc.pid}) exited: ${signal ?? `code ${code}`}`;
        const why = new Error(this.#exitReason);
        for (const p of this.#pending.values()) p.reject(why);
        this.#pending.clear();
        resolve(code);
      }),
    );
    readline.createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      let msg: { id?: number; ok?: boolean; result?: unknown; error?: string; event?: string };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        return void process.stderr.write(`[${name}] ${line}\n`);
      }
      if (msg.event !== undefined) {
        for (const l of this.#listeners) l(msg as RpcEvent);
        return;
      }
      const p = msg.id === undefined ? undefined : this.#pending.get(msg.id);
      if (!p) return;
      this.#pending.delete(msg.id!);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(`${name}: ${msg.error}`));
    });
    this.proc.stdin!.on('error', () => {
      /* the child died; `exited` reports it */
    });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get alive(): boolean {
    return this.#alive;
  }

  onEvent(listener: (e: RpcEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves with the first event named `event` (rejects if the child exits first). */
  waitEvent(event: string, timeoutMs = 60_000): Promise<RpcEvent> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        off();
        reject(new Error(`${this.name}: no "${event}" within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.onEvent((e) => {
        if (e.event !== event) return;
        clearTimeout(t);
        off();
        resolve(e);
      });
      void this.exited.then(() => {
        clearTimeout(t);
        off();
        reject(new Error(`${this.name} exited before "${event}"`));
      });
    });
  }

  call<K extends keyof C & string>(cmd: K, args: C[K]['args'], timeoutMs = 600_000): Promise<C[K]['result']> {
    if (!this.#alive) return Promise.reject(new Error(`${cmd}: ${this.#exitReason}`));
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${this.name}: "${cmd}" got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (v) => {
          clearTimeout(t);
          resolve(v as C[K]['result']);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      this.proc.stdin!.write(`${JSON.stringify({ id, cmd, args })}\n`);
    });
  }

  /** Closes stdin (the child exits on its own), then kills it by pid if it has not after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.#alive) return;
    this.proc.stdin!.end();
    const t = setTimeout(() => this.kill(), graceMs);
    await this.exited;
    clearTimeout(t);
  }

  kill(): void {
    if (!this.#alive || this.proc.pid === undefined) return;
    try {
      process.kill(this.proc.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}
