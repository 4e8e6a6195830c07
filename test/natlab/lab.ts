/**
 * The NAT lab: a small internet in network namespaces, for tests and benchmarks (root only).
 *
 *                      ┌──────────── <p>-inet: bridge br0 (the "internet", 203.0.113.0/24) ────────────┐
 *   <p>-pub  203.0.113.10 + .11 (STUN with its RFC 5780 alternate, coturn, tracker, source)
 *   <p>-r<X> router: wan 203.0.113.2x ── NAT (iptables) ── lan 192.0.2.(16i+1)/28
 *   <p>-h<X> host behind it: 192.0.2.(16i+2)/28, default route via its router
 *
 * NAT behaviours (Linux netfilter):
 * - `port-restricted`: MASQUERADE (keeps the source port: endpoint-independent mapping) and only
 *   conntrack replies come in (address-and-port-dependent filtering): a port-restricted cone.
 * - `symmetric`: MASQUERADE --random: every new destination gets a random port
 *   (address-and-port-dependent mapping).
 * - `full-cone`: 1:1 NAT (SNAT out, DNAT of everything in): endpoint-independent mapping and filtering.
 *
 * Nothing leaves the lab: every veth pair is created with both ends inside lab namespaces (never in
 * the machine's own), no namespace has a route to anything but the lab's addresses, and the public side
 * uses documentation ranges (203.0.113.0/24; the private sides 192.0.2.0/24). Processes started in the
 * lab are tracked and ended by pid in `destroy()`, which then deletes the namespaces.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { NatType } from '../../protocol/index.ts';
import { coturnConfig } from '../../stun/index.ts';
import { ROOT } from '../helpers/process.ts';

export type NatKind = 'port-restricted' | 'symmetric' | 'full-cone';

export interface LabHostSpec {
  name: string;
  nat: NatKind;
}

export interface LabHost extends LabHostSpec {
  /** The host's namespace. */
  ns: string;
  /** Its router's namespace. */
  routerNs: string;
  /** The host's private address. */
  ip: string;
  /** The router's public (WAN) address: what the host's traffic comes from. */
  wanIp: string;
}

export const PUBLIC_IP = '203.0.113.10';
export const PUBLIC_ALT_IP = '203.0.113.11';

/** The hosts the NAT lab's tests and benchmark use: two port-restricted cones, a full cone, two symmetric. */
export const LAB_HOSTS: readonly LabHostSpec[] = [
  { name: 'A', nat: 'port-restricted' },
  { name: 'E', nat: 'port-restricted' },
  { name: 'B', nat: 'full-cone' },
  { name: 'C', nat: 'symmetric' },
  { name: 'D', nat: 'symmetric' },
];

/** The NAT type RFC 5780 discovery must find behind each kind of NAT. */
export const NAT_TYPE_OF: Readonly<Record<NatKind, NatType>> = {
  'port-restricted': 'port-restricted-cone',
  'full-cone': 'full-cone',
  symmetric: 'symmetric',
};

/** Why the lab cannot run here (undefined when it can). */
export function natLabUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'the NAT lab needs Linux network namespaces';
  if (process.getuid?.() !== 0) return 'the NAT lab needs root (ip netns, iptables)';
  for (const tool of ['ip', 'iptables'])
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
      return `${tool} is missing (Debian packages iproute2, iptables: npm test installs them as root)`;
  const probe = `ptvprobe${process.pid}`;
  const made = spawnSync('ip', ['netns', 'add', probe]);
  if (made.status !== 0) return `ip netns add failed: ${String(made.stderr).trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return undefined;
}

export interface Running {
  child: ChildProcess;
  /** Everything printed so far (stdout and stderr, interleaved by line arrival). */
  readonly output: string;
  /** Resolves with the first match of `re` in the output (checked as lines arrive). */
  waitFor(re: RegExp, timeoutMs: number, what?: string): Promise<RegExpMatchArray>;
  /** Ends the process (SIGINT, then SIGKILL after `graceMs`); resolves on exit. */
  stop(graceMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

export class NatLab {
  readonly prefix: string;
  readonly pubNs: string;
  readonly hosts = new Map<string, LabHost>();
  readonly #namespaces: string[] = [];
  readonly #running = new Set<Running>();
  #destroyed = false;

  private constructor(prefix: string) {
    this.prefix = prefix;
    this.pubNs = `${prefix}-pub`;
  }

  /** Builds the lab. Throws (after cleaning up what it made) when a step fails. */
  static async create(specs: LabHostSpec[]): Promise<NatLab> {
    if (specs.length > 14) throw new RangeError('at most 14 hosts (one /28 each in 192.0.2.0/24)');
    const lab = new NatLab(`ptv${process.pid}${Math.floor(Math.random() * 1e4)}`);
    try {
      lab.#build(specs);
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return lab;
  }

  #sh(args: string[]): void {
    const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`lab: ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim()}`);
  }

  #addNs(name: string): string {
    this.#sh(['ip', 'netns', 'add', name]);
    this.#namespaces.push(name);
    this.#sh(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  /** A veth pair with one end in each of two lab namespaces (never in the machine's own). */
  #veth(nsA: string, ifA: string, nsB: string, ifB: string): void {
    this.#sh(['ip', '-n', nsA, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB]);
  }

  #build(specs: LabHostSpec[]): void {
    const inet = this.#addNs(`${this.prefix}-inet`);
    this.#sh(['ip', '-n', inet, 'link', 'add', 'br0', 'type', 'bridge']);
    this.#sh(['ip', '-n', inet, 'link', 'set', 'br0', 'up']);
    const plug = (ifName: string) => {
      this.#sh(['ip', '-n', inet, 'link', 'set', ifName, 'master', 'br0']);
      this.#sh(['ip', '-n', inet, 'link', 'set', ifName, 'up']);
    };

    const pub = this.#addNs(this.pubNs);
    this.#veth(pub, 'eth0', inet, 'pub');
    plug('pub');
    for (const ip of [PUBLIC_IP, PUBLIC_ALT_IP])
      this.#sh(['ip', '-n', pub, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    this.#sh(['ip', '-n', pub, 'link', 'set', 'eth0', 'up']);

    specs.forEach((spec, i) => {
      const router = this.#addNs(`${this.prefix}-r${spec.name}`);
      const host = this.#addNs(`${this.prefix}-h${spec.name}`);
      const wanIp = `203.0.113.${21 + i}`;
      const lanRouter = `192.0.2.${16 * i + 1}`;
      const ip = `192.0.2.${16 * i + 2}`;
      this.#veth(router, 'wan', inet, `r${i}`);
      plug(`r${i}`);
      this.#sh(['ip', '-n', router, 'addr', 'add', `${wanIp}/24`, 'dev', 'wan']);
      this.#sh(['ip', '-n', router, 'link', 'set', 'wan', 'up']);
      this.#veth(router, 'lan', host, 'eth0');
      this.#sh(['ip', '-n', router, 'addr', 'add', `${lanRouter}/28`, 'dev', 'lan']);
      this.#sh(['ip', '-n', router, 'link', 'set', 'lan', 'up']);
      this.#sh(['ip', '-n', host, 'addr', 'add', `${ip}/28`, 'dev', 'eth0']);
      this.#sh(['ip', '-n', host, 'link', 'set', 'eth0', 'up']);
      this.#sh(['ip', '-n', host, 'route', 'add', 'default', 'via', lanRouter]);
      this.#sh(['ip', 'netns', 'exec', router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      const ipt = (...rule: string[]) => this.#sh(['ip', 'netns', 'exec', router, 'iptables', ...rule]);
      // The router itself answers nothing from the internet.
      ipt('-A', 'INPUT', '-i', 'wan', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT');
      ipt('-A', 'INPUT', '-i', 'wan', '-j', 'DROP');
      switch (spec.nat) {
        case 'port-restricted':
        case 'symmetric':
          ipt(
            '-t',
            'nat',
            '-A',
            'POSTROUTING',
            '-o',
            'wan',
            '-j',
            'MASQUERADE',
            ...(spec.nat === 'symmetric' ? ['--random'] : []),
          );
          ipt(
            '-A',
            'FORWARD',
            '-i',
            'wan',
            '-m',
            'conntrack',
            '--ctstate',
            'ESTABLISHED,RELATED',
            '-j',
            'ACCEPT',
          );
          ipt('-A', 'FORWARD', '-i', 'wan', '-j', 'DROP');
          break;
        case 'full-cone':
          ipt('-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan', '-s', ip, '-j', 'SNAT', '--to-source', wanIp);
          ipt('-t', 'nat', '-A', 'PREROUTING', '-i', 'wan', '-j', 'DNAT', '--to-destination', ip);
          break;
      }
      this.hosts.set(spec.name, { ...spec, ns: host, routerNs: router, ip, wanIp });
    });
  }

  host(name: string): LabHost {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no lab host ${name}`);
    return h;
  }

  /** Blocks (or unblocks) TURN, UDP and TCP, at a host's router: a firewall that leaves no path. */
  blockTurn(name: string, blocked: boolean): void {
    for (const proto of ['udp', 'tcp'])
      this.#sh([
        'ip',
        'netns',
        'exec',
        this.host(name).routerNs,
        'iptables',
        blocked ? '-I' : '-D',
        'FORWARD',
        '-d',
        PUBLIC_IP,
        '-p',
        proto,
        '--dport',
        String(LAB_TURN_PORT),
        '-j',
        'DROP',
      ]);
  }

  /** Runs a command to its end inside a namespace. */
  run(
    ns: string,
    cmd: string,
    args: string[],
    timeoutMs = 30_000,
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NODE_NO_WARNINGS: '1' },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** `peertv <args>` run to its end inside a namespace. */
  peertv(ns: string, args: string[], timeoutMs?: number) {
    return this.run(ns, process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], timeoutMs);
  }

  /** Starts a long-running command inside a namespace; `destroy()` ends it. */
  start(ns: string, cmd: string, args: string[], env: Record<string, string> = {}): Running {
    if (this.#destroyed) throw new Error('lab destroyed');
    // `ip netns exec` execs the command: the child's pid is the command's own.
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_NO_WARNINGS: '1', ...env },
    });
    let output = '';
    const watchers = new Set<() => void>();
    const onData = (d: Buffer) => {
      output += d.toString();
      for (const w of [...watchers]) w();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const running: Running = {
      child,
      get output() {
        return output;
      },
      exited,
      waitFor: (re, timeoutMs, what) =>
        new Promise((resolve, reject) => {
          const once = new RegExp(re.source, re.flags.replace('g', '')); // no lastIndex state
          const check = () => {
            const m = once.exec(output);
            if (!m) return;
            watchers.delete(check);
            clearTimeout(timer);
            resolve(m);
          };
          const timer = setTimeout(() => {
            watchers.delete(check);
            reject(
              new Error(
                `timed out waiting for ${what ?? re} from ${cmd} ${args.join(' ')}; output:\n${output.slice(-3000)}`,
              ),
            );
          }, timeoutMs);
          void exited.then((code) => {
            if (!watchers.has(check)) return;
            watchers.delete(check);
            clearTimeout(timer);
            reject(
              new Error(`${cmd} exited (${code}) before ${what ?? re}; output:\n${output.slice(-3000)}`),
            );
          });
          watchers.add(check);
          check();
        }),
      stop: async (graceMs = 3000) => {
        this.#running.delete(running);
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGINT');
        const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(t);
      },
    };
    this.#running.add(running);
    return running;
  }

  /** `peertv <args>` started inside a namespace. */
  startPeertv(ns: string, args: string[], env?: Record<string, string>): Running {
    return this.start(ns, process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], env);
  }

  /** Ends every process started in the lab (by pid), then deletes its namespaces. Idempotent. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    await Promise.all([...this.#running].map((r) => r.stop(2000)));
    for (const ns of this.#namespaces.reverse()) spawnSync('ip', ['netns', 'del', ns]);
  }
}

/** The hosts' private side (one /28 per host), as coturn's `denied-peer-ip` range. */
export const LAB_PRIVATE_RANGE = '192.0.2.0-192.0.2.255';
/**
 * What coturn prints when it could not relay a datagram (`perror`): it then closes that allocation,
 * and any link relayed through it goes dead.
 */
export const TURN_SEND_FAILED = /udp send: /;

export const LAB_STUN_PORT = 3478;
export const LAB_TURN_PORT = 3480;
export const LAB_TRACKER_URL = `http://${PUBLIC_IP}:8080`;
export const LAB_CHANNEL = 'lab';

export interface LabServices {
  stun: Running;
  turn: Running | undefined;
  tracker: Running;
  source: Running | undefined;
  /** A scratch folder (coturn's config, the source's data); removed by `stop()`. */
  dir: string;
  stop(): Promise<void>;
}

/**
 * On the lab's public host: our STUN server with its RFC 5780 alternate (203.0.113.11), coturn with
 * the safe configuration from `coturnConfig()` (TURN REST API secret shared with the tracker), the
 * tracker (handing peers the STUN server and TURN credentials), and a small test-pattern channel.
 */
export async function startLabServices(
  lab: NatLab,
  opts: { turn?: boolean; source?: boolean } = {},
): Promise<LabServices> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peertv-natlab-'));
  const secret = crypto.randomBytes(18).toString('base64url');
  const stun = lab.startPeertv(lab.pubNs, [
    'stun',
    '--host',
    PUBLIC_IP,
    '--port',
    String(LAB_STUN_PORT),
    '--alternate',
    PUBLIC_ALT_IP,
    '--rate',
    '0',
  ]);
  let turn: Running | undefined;
  if (opts.turn ?? true) {
    const conf = path.join(dir, 'turnserver.conf');
    fs.writeFileSync(
      conf,
      coturnConfig({
        listeningIp: PUBLIC_IP,
        listeningPort: LAB_TURN_PORT,
        secret,
        realm: 'natlab.peertv',
        minPort: 49152,
        maxPort: 49407,
        // The lab's LANs stand for RFC 1918 networks, which the configuration denies as relay peers;
        // 192.0.2.0/24 is not among them, so they are denied here. Otherwise coturn accepts a
        // permission for a peer's host candidate, relays the other peer's ICE checks to it, fails to
        // send (this host has no route to the LANs: ENETUNREACH) and closes the whole allocation,
        // whichever link it carried: a relayed link then dies within a second of opening.
        deniedPeerRanges: [LAB_PRIVATE_RANGE],
        logFile: 'stdout',
      }),
    );
    turn = lab.start(lab.pubNs, 'turnserver', ['-c', conf, '--pidfile', path.join(dir, 'turnserver.pid')]);
  }
  const tracker = lab.startPeertv(lab.pubNs, [
    'tracker',
    '--host',
    PUBLIC_IP,
    '--port',
    '8080',
    '--data-dir',
    path.join(dir, 'tracker-data'),
    '--ice-server',
    `stun:${PUBLIC_IP}:${LAB_STUN_PORT}`,
    // Browsers learn their NAT's mapping by ICE against both addresses (the alternate port is port + 1).
    '--nat-probe',
    `stun:${PUBLIC_IP}:${LAB_STUN_PORT},stun:${PUBLIC_ALT_IP}:${LAB_STUN_PORT + 1}`,
    ...(turn
      ? ['--turn-url', `turn:${PUBLIC_IP}:${LAB_TURN_PORT}?transport=udp`, '--turn-secret', secret]
      : []),
  ]);
  const services: LabServices = {
    stun,
    turn,
    tracker,
    source: undefined,
    dir,
    stop: async () => {
      await Promise.all([services.source, tracker, turn, stun].map((r) => r?.stop()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await stun.waitFor(/^stun: udp/m, 20_000, 'the STUN server');
    await tracker.waitFor(/^tracker: http/m, 20_000, 'the tracker');
    if (turn) await turn.waitFor(/Total General servers|listener opened on/i, 20_000, 'coturn');
    if (opts.source ?? true) {
      services.source = lab.startPeertv(lab.pubNs, [
        'source',
        '--host',
        PUBLIC_IP,
        '--port',
        '8081',
        '--tracker',
        LAB_TRACKER_URL,
        '--channel',
        LAB_CHANNEL,
        '--ladder',
        '180p:320x180:200:32',
        '--fps',
        '15',
        '--data-dir',
        path.join(dir, 'data'),
      ]);
      await services.source.waitFor(/^live: http/m, 30_000, 'the source');
    }
  } catch (err) {
    await services.stop();
    throw err;
  }
  return services;
}

/** A `peertv peer` viewer of the lab's channel on a host; `extra` adds flags (e.g. --stun, --nat-type). */
export function startLabViewer(lab: NatLab, host: string, extra: string[]): Running {
  return lab.startPeertv(lab.host(host).ns, [
    'peer',
    '--tracker',
    LAB_TRACKER_URL,
    '--channel',
    LAB_CHANNEL,
    ...extra,
  ]);
}

/** The peer id a `peertv peer` printed when it joined. */
export const joinedPeerId = (p: Running): string | undefined => /^joined \S+ as (\S+)$/m.exec(p.output)?.[1];

/**
 * The peer CLI's link lines: `peer <id> connected in <ms> ms: direct (srflx ↔ srflx, udp)` when the
 * channel opens, then `peer <id> now relayed (…)` whenever ICE switches to another candidate pair.
 */
export const ROUTE_LINE =
  /^peer (\S+) (?:connected in (\d+) ms:|now) (direct|relayed) \((\w+) ↔ (\w+)(?:, (\w+))?\)$/gm;

/** Every route a peer printed for its link to `remote`, oldest first (`connectMs` on the first). */
export function routesTo(p: Running, remote: string | undefined) {
  return [...p.output.matchAll(ROUTE_LINE)]
    .filter((m) => m[1] === remote)
    .map((m) => ({
      connectMs: m[2] === undefined ? undefined : Number(m[2]),
      relayed: m[3] === 'relayed',
      local: m[4]!,
      remoteType: m[5]!,
    }));
}

/** How long after a link opens its route is final: the engine reads it until 4 s (ROUTE_CHECKS_MS). */
export const ROUTE_SETTLE_MS = 4500;

/** The `playing … after X s` line's X, once the viewer prints it. */
export async function startupS(p: Running, timeoutMs = 20_000): Promise<number> {
  return Number((await p.waitFor(/^playing from segment \d+ after ([\d.]+) s$/m, timeoutMs, 'playback'))[1]);
}
