/**
 * The server side of the plain RTMP handshake (what OBS and ffmpeg use for rtmp://): C0+C1 in, S0+S1+S2
 * out (S2 echoes C1), then C2 in. Bytes are copied into one fixed buffer, released once done.
 */
import crypto from 'node:crypto';

const HANDSHAKE_SIZE = 1536;
const RTMP_VERSION = 3;

export type HandshakePhase = 'c0c1' | 'c2' | 'done';

export class RtmpHandshake {
  #phase: HandshakePhase = 'c0c1';
  #buf: Buffer | undefined = Buffer.alloc(1 + HANDSHAKE_SIZE);
  #len = 0;

  get phase(): HandshakePhase {
    return this.#phase;
  }

  /** Bytes held (the handshake buffer until the handshake is done or released). */
  get bufferedBytes(): number {
    return this.#buf?.length ?? 0;
  }

  /**
   * Takes handshake bytes from `data` at `off`; returns how many it took. Once C0+C1 are in, `reply`
   * gets S0+S1+S2. Throws on an unsupported version.
   */
  take(data: Buffer, off: number, reply: (bytes: Buffer) => void): number {
    const hs = this.#buf;
    if (!hs || this.#phase === 'done') return 0;
    if (this.#phase === 'c0c1' && this.#len === 0 && data[off] !== RTMP_VERSION)
      throw new Error(`unsupported RTMP version ${data[off]}`);
    const size = this.#phase === 'c0c1' ? 1 + HANDSHAKE_SIZE : HANDSHAKE_SIZE;
    const n = Math.min(size - this.#len, data.length - off);
    data.copy(hs, this.#len, off, off + n);
    this.#len += n;
    if (this.#len < size) return n;
    this.#len = 0;
    if (this.#phase === 'c0c1') {
      const s1 = crypto.randomBytes(HANDSHAKE_SIZE);
      s1.writeUInt32BE(0, 0);
      s1.writeUInt32BE(0, 4);
      this.#phase = 'c2';
      reply(Buffer.concat([Buffer.from([RTMP_VERSION]), s1, hs.subarray(1)]));
    } else {
      this.#buf = undefined;
      this.#phase = 'done';
    }
    return n;
  }

  /** Drops the buffer. Idempotent. */
  release(): void {
    this.#buf = undefined;
  }
}
