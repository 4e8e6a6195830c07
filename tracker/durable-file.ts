/**
 * A small JSON document kept durably on disk: written atomically (temporary file, fsync, rename,
 * fsync of the directory), so a crash leaves either the old or the new version, never a torn one.
 * Saves are serialized and coalesced: a save asked while another is being written is folded into the
 * next write, which takes the state as it is when it starts.
 */
import fs from 'node:fs';
import path from 'node:path';

export class DurableJsonFile<T> {
  readonly file: string;
  #chain: Promise<void> = Promise.resolve();
  #next: Promise<void> | undefined;

  constructor(
    file: string,
    /** Produces what to write, called when a write starts. */
    private readonly snapshot: () => T,
  ) {
    this.file = path.resolve(file);
  }

  /**
   * The document as last written, parsed by `parse` (which throws on anything invalid); undefined when
   * there is no file yet. Synchronous: called once at start-up, before anything is served.
   */
  load<R>(parse: (json: unknown) => R): R | undefined {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new Error(`${this.file} is not valid JSON (${(err as Error).message})`, { cause: err });
    }
    return parse(json);
  }

  /** Resolves once a write that includes every change made before this call is on disk. */
  save(): Promise<void> {
    if (this.#next) return this.#next;
    const next = this.#chain.then(() => {
      this.#next = undefined;
      return this.#write();
    });
    this.#next = next;
    this.#chain = next.catch(() => {});
    return next;
  }

  async #write(): Promise<void> {
    const dir = path.dirname(this.file);
    await fs.promises.mkdir(dir, { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    const fh = await fs.promises.open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(`${JSON.stringify(this.snapshot(), null, 1)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, this.file);
    // The rename itself must survive a power cut.
    const d = await fs.promises.open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }
}
