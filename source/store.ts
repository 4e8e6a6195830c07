/**
 * A channel's published state on disk and in memory: segments, their attestations, gaps left by a
 * crashed encoder, and broadcasts (each one's recording). Sequence numbers survive restarts of the
 * process, so a number is never reused for different bytes.
 *
 * Layout under `<dataDir>/channels/<id>/`:
 *   channel-key.pem                     Ed25519 private key (0600)
 *   segments/<rendition>/<seq>.ts       published segments (immutable)
 *   segments/<rendition>/index.ndjson   one line per published entry, appended before it is served
 *   broadcasts/<broadcastId>.json       broadcast (recording) metadata
 *   work/                               ffmpeg's scratch space (never served)
 *   source.lock                         the process that has the channel open (pid, host, start time)
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import createDebug from 'debug';
import { GENESIS_HASH, isSequenceNumber, parseAttestation, type Attestation } from '../protocol/index.ts';
import { ConfigError, type Rendition } from './config.ts';
import { attestationHashSync, ChannelSigner, sha256HexSync } from './keys.ts';

const debug = createDebug('peertv:source:store');

export interface SegmentEntry {
  readonly kind: 'segment';
  readonly attestation: Attestation;
}

/** A sequence number a rendition never produced (its encoder died first); listed as EXT-X-GAP. */
export interface GapEntry {
  readonly kind: 'gap';
  readonly mediaSequence: number;
  readonly discontinuitySequence: number;
  readonly durationMs: number;
  readonly publishedAtMs: number;
}

export type Entry = SegmentEntry | GapEntry;

export const entrySeq = (e: Entry): number =>
  e.kind === 'segment' ? e.attestation.mediaSequence : e.mediaSequence;
export const entryDisc = (e: Entry): number =>
  e.kind === 'segment' ? e.attestation.discontinuitySequence : e.discontinuitySequence;
export const entryDurationMs = (e: Entry): number =>
  e.kind === 'segment' ? e.attestation.durationMs : e.durationMs;
export const entryPublishedAtMs = (e: Entry): number =>
  e.kind === 'segment' ? e.attestation.publishedAtMs : e.publishedAtMs;

export interface Broadcast {
  readonly id: string;
  title: string;
  readonly startedAtMs: number;
  endedAtMs: number | null;
  /** First media sequence of the broadcast (same for all renditions). */
  readonly firstSequence: number;
  readonly ladder: readonly Rendition[];
  readonly hasAudio: boolean;
  readonly fps: number;
  readonly segmentDurationS: number;
}

export const BROADCAST_ID_PATTERN = /^\d{8}-\d{6}(-\d{1,4})?$/;

class RenditionLog {
  readonly entries = new Map<number, Entry>();
  /** Sequence numbers in increasing order. */
  readonly seqs: number[] = [];
  lastHash = GENESIS_HASH;
  /** Next free sequence number (also counts orphan files left by a crash). */
  next = 0;
  fd: number | undefined;

  constructor(readonly dir: string) {}

  add(e: Entry): void {
    const seq = entrySeq(e);
    this.entries.set(seq, e);
    this.seqs.push(seq);
    this.next = Math.max(this.next, seq + 1);
    if (e.kind === 'segment') this.lastHash = attestationHashSync(e.attestation);
  }

  /** Entries with `from <= seq <= to`, in order. */
  range(from: number, to: number): Entry[] {
    let lo = 0;
    let hi = this.seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.seqs[mid]! < from) lo = mid + 1;
      else hi = mid;
    }
    const out: Entry[] = [];
    for (let i = lo; i < this.seqs.length && this.seqs[i]! <= to; i++)
      out.push(this.entries.get(this.seqs[i]!)!);
    return out;
  }
}

export class ChannelStore {
  readonly dir: string;
  readonly signer: ChannelSigner;
  readonly #renditions = new Map<string, RenditionLog>();
  readonly #broadcasts = new Map<string, Broadcast>();
  readonly #lock: DirectoryLock;
  #destroyed = false;

  /**
   * Opens (or creates) a channel's directory. The directory is locked first, before anything in it is
   * read, written or deleted: a second store on it, in this process or another one that is running,
   * throws a ConfigError naming the holder. A lock left by a process that is gone is taken over.
   */
  constructor(
    dataDir: string,
    readonly channelId: string,
  ) {
    this.dir = path.join(dataDir, 'channels', channelId);
    fs.mkdirSync(this.dir, { recursive: true });
    this.#lock = DirectoryLock.acquire(this.dir);
    try {
      fs.mkdirSync(path.join(this.dir, 'segments'), { recursive: true });
      fs.mkdirSync(path.join(this.dir, 'broadcasts'), { recursive: true });
      this.signer = ChannelSigner.loadOrCreate(path.join(this.dir, 'channel-key.pem'));
      for (const name of fs.readdirSync(path.join(this.dir, 'segments'))) this.#load(name);
      this.#loadBroadcasts();
    } catch (err) {
      this.#lock.release();
      throw err;
    }
  }

  get workRoot(): string {
    return path.join(this.dir, 'work');
  }

  segmentPath(rendition: string, seq: number): string {
    return path.join(this.dir, 'segments', rendition, `${seq}.ts`);
  }

  #load(rendition: string): void {
    const log = new RenditionLog(path.join(this.dir, 'segments', rendition));
    const index = path.join(log.dir, 'index.ndjson');
    if (fs.existsSync(index)) {
      for (const line of fs.readFileSync(index, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        const e = parseEntry(line, this.channelId, rendition);
        if (!e || (log.seqs.length > 0 && entrySeq(e) <= log.seqs[log.seqs.length - 1]!)) {
          console.warn(`peertv: ${index}: skipping an unreadable or out-of-order line`);
          continue;
        }
        log.add(e);
      }
    }
    // A file without an index line (crash between the two) still reserves its number.
    for (const f of fs.readdirSync(log.dir)) {
      const m = /^(\d+)\.ts$/.exec(f);
      if (m) log.next = Math.max(log.next, Number(m[1]) + 1);
    }
    this.#renditions.set(rendition, log);
    debug('loaded %s/%s: %d entries, next %d', this.channelId, rendition, log.seqs.length, log.next);
  }

  #loadBroadcasts(): void {
    const dir = path.join(this.dir, 'broadcasts');
    for (const f of fs.readdirSync(dir)) {
      if (!f.endsWith('.json')) continue;
      try {
        const b = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as Broadcast;
        if (!BROADCAST_ID_PATTERN.test(b.id)) continue;
        this.#broadcasts.set(b.id, b);
      } catch {
        console.warn(`peertv: ignoring unreadable broadcast record ${f}`);
      }
    }
    // A broadcast still marked live was cut off by a crash of this process: finalize it now.
    for (const b of this.#broadcasts.values())
      if (b.endedAtMs === null) this.endBroadcast(b.id, this.#lastPublishedAt(b) ?? b.startedAtMs);
  }

  #log(rendition: string): RenditionLog {
    let log = this.#renditions.get(rendition);
    if (!log) {
      log = new RenditionLog(path.join(this.dir, 'segments', rendition));
      fs.mkdirSync(log.dir, { recursive: true });
      this.#renditions.set(rendition, log);
    }
    return log;
  }

  /** The sequence number the next run of the encoder starts at: never reused, same for all renditions. */
  nextSequence(): number {
    let next = 0;
    for (const log of this.#renditions.values()) next = Math.max(next, log.next);
    return next;
  }

  nextSequenceOf(rendition: string): number {
    return this.#renditions.get(rendition)?.next ?? 0;
  }

  /** Discontinuity sequence of the newest entry (-1 when nothing was ever published). */
  lastDiscontinuity(): number {
    let disc = -1;
    for (const log of this.#renditions.values()) {
      const last = log.seqs[log.seqs.length - 1];
      if (last !== undefined) disc = Math.max(disc, entryDisc(log.entries.get(last)!));
    }
    return disc;
  }

  /**
   * Publishes a complete segment file written by ffmpeg: hash, sign (chained), move into place,
   * append to the index, and only then make it visible. Returns the signed attestation.
   */
  publishSegment(p: {
    rendition: string;
    mediaSequence: number;
    discontinuitySequence: number;
    durationMs: number;
    file: string;
  }): Attestation {
    if (this.#destroyed) throw new Error('store was destroyed');
    const log = this.#log(p.rendition);
    if (p.mediaSequence < log.next)
      throw new Error(`sequence ${p.mediaSequence} of ${p.rendition} is already taken (next is ${log.next})`);
    const bytes = fs.readFileSync(p.file);
    if (bytes.length === 0) throw new Error(`segment ${p.file} is empty`);
    const attestation = this.signer.sign({
      v: 1,
      channel: this.channelId,
      rendition: p.rendition,
      mediaSequence: p.mediaSequence,
      discontinuitySequence: p.discontinuitySequence,
      byteLength: bytes.length,
      durationMs: Math.round(p.durationMs),
      sha256: sha256HexSync(bytes),
      prevHash: log.lastHash,
      publishedAtMs: Date.now(),
    });
    fs.renameSync(p.file, this.segmentPath(p.rendition, p.mediaSequence));
    this.#append(log, JSON.stringify(attestation));
    log.add({ kind: 'segment', attestation });
    return attestation;
  }

  /** Records that `rendition` has no segment `mediaSequence` (its encoder died before finishing it). */
  publishGap(p: {
    rendition: string;
    mediaSequence: number;
    discontinuitySequence: number;
    durationMs: number;
  }): void {
    const log = this.#log(p.rendition);
    if (p.mediaSequence < log.next)
      throw new Error(`sequence ${p.mediaSequence} of ${p.rendition} is already taken`);
    const gap: GapEntry = {
      kind: 'gap',
      ...p,
      durationMs: Math.round(p.durationMs),
      publishedAtMs: Date.now(),
    };
    this.#append(log, JSON.stringify(gap));
    log.add(gap);
  }

  #append(log: RenditionLog, line: string): void {
    log.fd ??= fs.openSync(path.join(log.dir, 'index.ndjson'), 'a');
    fs.writeSync(log.fd, `${line}\n`);
  }

  renditionNames(): string[] {
    return [...this.#renditions.keys()];
  }

  entry(rendition: string, seq: number): Entry | undefined {
    return this.#renditions.get(rendition)?.entries.get(seq);
  }

  entries(rendition: string, from: number, to: number): Entry[] {
    return this.#renditions.get(rendition)?.range(from, to) ?? [];
  }

  /** Newest entry of `rendition` at or after `from`. */
  latest(rendition: string, from = 0): Entry | undefined {
    const log = this.#renditions.get(rendition);
    const last = log?.seqs[log.seqs.length - 1];
    return last !== undefined && last >= from ? log!.entries.get(last) : undefined;
  }

  // ---- broadcasts (recordings) ----

  startBroadcast(p: Omit<Broadcast, 'id' | 'endedAtMs' | 'startedAtMs'>): Broadcast {
    const now = new Date();
    const base = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    let id = base;
    for (let i = 1; this.#broadcasts.has(id); i++) id = `${base}-${i}`;
    const b: Broadcast = { ...p, id, startedAtMs: now.getTime(), endedAtMs: null };
    this.#broadcasts.set(id, b);
    this.#saveBroadcast(b);
    return b;
  }

  endBroadcast(id: string, endedAtMs = Date.now()): Broadcast | undefined {
    const b = this.#broadcasts.get(id);
    if (!b || b.endedAtMs !== null) return b;
    b.endedAtMs = endedAtMs;
    this.#saveBroadcast(b);
    return b;
  }

  #saveBroadcast(b: Broadcast): void {
    const file = path.join(this.dir, 'broadcasts', `${b.id}.json`);
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(b, null, 2));
    fs.renameSync(`${file}.tmp`, file);
  }

  #lastPublishedAt(b: Broadcast): number | undefined {
    let at: number | undefined;
    for (const r of b.ladder) {
      const e = this.latest(r.name, b.firstSequence);
      if (e) at = Math.max(at ?? 0, entryPublishedAtMs(e));
    }
    return at;
  }

  broadcast(id: string): Broadcast | undefined {
    return this.#broadcasts.get(id);
  }

  /** All broadcasts, newest first. */
  broadcasts(): Broadcast[] {
    return [...this.#broadcasts.values()].sort((a, b) => b.startedAtMs - a.startedAtMs);
  }

  /** Last sequence number of a broadcast (for an ended one: the end of its recording). */
  lastSequenceOf(b: Broadcast): number | undefined {
    let last: number | undefined;
    for (const r of b.ladder) {
      const e = this.latest(r.name, b.firstSequence);
      if (e) last = Math.max(last ?? -1, entrySeq(e));
    }
    // A later broadcast starts where this one stopped.
    for (const other of this.#broadcasts.values())
      if (other.firstSequence > b.firstSequence && last !== undefined)
        last = Math.min(last, other.firstSequence - 1);
    return last;
  }

  /** Closes the indexes and releases the directory's lock. Idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const log of this.#renditions.values()) {
      if (log.fd !== undefined) fs.closeSync(log.fd);
      log.fd = undefined;
    }
    this.#lock.release();
  }
}

const LOCK_FILE = 'source.lock';

/** Who holds a lock: enough to tell whether that process still runs (a pid alone may be reused). */
interface LockOwner {
  pid: number;
  host: string;
  /** The process's start time in clock ticks since boot (Linux /proc/<pid>/stat), null elsewhere. */
  startTicks: string | null;
}

/** Field 22 (start time) and field 3 (state) of /proc/<pid>/stat; undefined when there is no such file. */
function procStat(pid: number): { startTicks: string; state: string } | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may itself contain spaces and parentheses.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0]!, startTicks: fields[19]! };
  } catch {
    return undefined;
  }
}

function isLockOwner(o: unknown): o is LockOwner {
  const x = o as LockOwner;
  return (
    typeof o === 'object' &&
    o !== null &&
    Number.isSafeInteger(x.pid) &&
    x.pid > 0 &&
    typeof x.host === 'string' &&
    (x.startTicks === null || typeof x.startTicks === 'string')
  );
}

/** Whether the process that wrote a lock still runs (on another host: cannot tell, so yes). */
function ownerAlive(o: LockOwner): boolean {
  if (o.host !== os.hostname()) return true;
  try {
    process.kill(o.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    // EPERM: it runs, as another user.
  }
  const stat = procStat(o.pid);
  if (stat?.state === 'Z') return false;
  // The pid was reused by a process that started later.
  if (stat && o.startTicks !== null && stat.startTicks !== o.startTicks) return false;
  return true;
}

/** Locks held by this process, released when it exits however it exits (short of SIGKILL). */
const heldLocks = new Set<DirectoryLock>();
let exitHookInstalled = false;

/**
 * An exclusive lock on a directory: a file created with O_EXCL semantics (hard link of a complete
 * temporary file, so it is never seen half-written) that names its holder. A lock whose holder is gone
 * is stale: it is moved aside (atomically, and put back if it turns out someone just took it) and taken.
 */
export class DirectoryLock {
  readonly file: string;
  readonly #content: string;
  #released = false;

  private constructor(file: string, content: string) {
    this.file = file;
    this.#content = content;
  }

  static acquire(dir: string): DirectoryLock {
    const file = path.join(dir, LOCK_FILE);
    const me: LockOwner = {
      pid: process.pid,
      host: os.hostname(),
      startTicks: procStat(process.pid)?.startTicks ?? null,
    };
    const content = `${JSON.stringify(me)}\n`;
    const tmp = `${file}.${process.pid}.${crypto.randomBytes(6).toString('hex')}`;
    fs.writeFileSync(tmp, content, { mode: 0o644 });
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          fs.linkSync(tmp, file);
          const lock = new DirectoryLock(file, content);
          heldLocks.add(lock);
          if (!exitHookInstalled) {
            exitHookInstalled = true;
            process.on('exit', () => {
              for (const l of heldLocks) l.release();
            });
          }
          debug('locked %s', dir);
          return lock;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        const seen = readText(file);
        if (seen === undefined) continue; // released meanwhile: try again
        const owner = parseOwner(seen);
        // A lock we cannot read was written by something else: refuse rather than guess.
        if (!owner)
          throw new ConfigError(
            `${dir} is locked (${file} is not a peertv lock): remove it if no source runs`,
          );
        if (ownerAlive(owner)) throw lockedError(dir, file, owner);
        // Stale: move it aside, and make sure what we moved is what we judged stale.
        const aside = `${file}.stale.${process.pid}.${crypto.randomBytes(6).toString('hex')}`;
        try {
          fs.renameSync(file, aside);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw err;
        }
        const moved = readText(aside);
        if (moved === seen) {
          debug('took over a stale lock of pid %d in %s', owner.pid, dir);
          fs.rmSync(aside, { force: true });
          continue;
        }
        // Someone took the lock between our read and our rename: give it back.
        try {
          fs.linkSync(aside, file);
        } catch {
          /* taken again meanwhile; the holder is whoever has it now */
        }
        fs.rmSync(aside, { force: true });
        const now = parseOwner(readText(file) ?? moved ?? '');
        throw now ? lockedError(dir, file, now) : new ConfigError(`${dir} is locked by another process`);
      }
      throw new ConfigError(`could not lock ${dir}: its lock keeps changing`);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  /** Removes the lock file if it is still ours. Idempotent. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    heldLocks.delete(this);
    if (readText(this.file) === this.#content) fs.rmSync(this.file, { force: true });
  }
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const o: unknown = JSON.parse(text);
    return isLockOwner(o) ? o : undefined;
  } catch {
    return undefined;
  }
}

function lockedError(dir: string, file: string, o: LockOwner): ConfigError {
  if (o.pid === process.pid && o.host === os.hostname())
    return new ConfigError(`${dir} is already open in this process (pid ${o.pid})`);
  const where = o.host === os.hostname() ? '' : ` on ${o.host}`;
  return new ConfigError(
    `${dir} is in use by another peertv source (pid ${o.pid}${where}): stop it first, or delete ${file} if no such process runs`,
  );
}

function parseEntry(line: string, channel: string, rendition: string): Entry | undefined {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof o === 'object' && o !== null && (o as { kind?: unknown }).kind === 'gap') {
    const g = o as GapEntry;
    const ok = [g.mediaSequence, g.discontinuitySequence, g.durationMs, g.publishedAtMs].every(
      isSequenceNumber,
    );
    return ok ? g : undefined;
  }
  const r = parseAttestation(o);
  if (!r.ok || r.attestation.channel !== channel || r.attestation.rendition !== rendition) return undefined;
  return { kind: 'segment', attestation: r.attestation };
}
