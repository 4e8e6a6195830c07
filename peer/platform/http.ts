/**
 * {@link HttpFetcher} over `globalThis.fetch` (browsers and Node ≥ 20): streams the body so progress is
 * reported as bytes arrive, aborts through an `AbortSignal`, and returns HTTP error statuses (404, 503…)
 * as results rather than throwing. A GET whose connection was reset before any response arrived is
 * sent once more (a pooled keep-alive connection the server was closing as it was reused).
 */
import type { HttpFetcher, HttpResponse } from '../core/seams.ts';
import { MAX_SEGMENT_BYTES } from '../../protocol/index.ts';

export interface HttpFetcherOptions {
  /** Bodies larger than this are refused (the request is cancelled and the promise rejects). */
  maxBytes?: number;
  /** The fetch implementation (default `globalThis.fetch`). */
  fetch?: typeof globalThis.fetch;
  /**
   * Sends a GET once more when its connection was reset before any response arrived (default true).
   * Never after a response started, never when the caller's signal aborted. Browsers already do this
   * themselves and give no error detail, so there it never triggers.
   */
  retryOnReset?: boolean;
}

/** Error codes (Node, undici) of a connection closed or reset under a request. */
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'UND_ERR_SOCKET']);

/** Whether `err` (or one of its causes) says the connection was reset or closed by the other side. */
export function isConnectionReset(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && RESET_CODES.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** Thrown when a body exceeds {@link HttpFetcherOptions.maxBytes}. */
export class HttpBodyTooLargeError extends Error {
  override name = 'HttpBodyTooLargeError';
}

/**
 * Creates a fetcher. `onProgress(n)` is called once per chunk received with that chunk's size `n`:
 * the calls sum to the body's length.
 */
export function createHttpFetcher(opts: HttpFetcherOptions = {}): HttpFetcher {
  const maxBytes = opts.maxBytes ?? MAX_SEGMENT_BYTES;
  const retryOnReset = opts.retryOnReset ?? true;
  return {
    async get(url, { signal, onProgress } = {}): Promise<HttpResponse> {
      const doFetch = opts.fetch ?? globalThis.fetch;
      const send = () => doFetch(url, { method: 'GET', signal, redirect: 'follow' });
      let response: Response;
      try {
        response = await send();
      } catch (err) {
        // No response byte arrived (fetch settles with the headers): safe to send a GET again, once.
        if (!retryOnReset || signal?.aborted || !isConnectionReset(err)) throw err;
        response = await send();
      }
      const body = response.body;
      if (!body) return { status: response.status, bytes: new Uint8Array(0) };
      // Content-Length is only a hint (a compressed transfer is longer once decoded).
      const declared = Number(response.headers.get('content-length'));
      if (Number.isSafeInteger(declared) && declared > maxBytes) {
        await body.cancel().catch(() => {});
        throw new HttpBodyTooLargeError(`${url}: body of ${declared} bytes exceeds ${maxBytes}`);
      }
      let buf = new Uint8Array(Number.isSafeInteger(declared) && declared > 0 ? declared : 16 * 1024);
      let length = 0;
      const reader = body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (!value || value.byteLength === 0) continue;
          if (length + value.byteLength > maxBytes)
            throw new HttpBodyTooLargeError(`${url}: body exceeds ${maxBytes} bytes`);
          if (length + value.byteLength > buf.byteLength) {
            const bigger = new Uint8Array(
              Math.min(maxBytes, Math.max(buf.byteLength * 2, length + value.byteLength)),
            );
            bigger.set(buf.subarray(0, length));
            buf = bigger;
          }
          buf.set(value, length);
          length += value.byteLength;
          onProgress?.(value.byteLength);
        }
      } catch (err) {
        reader.cancel().catch(() => {});
        // An abort surfaces as the signal's reason where the runtime gives it.
        if (signal?.aborted && signal.reason !== undefined) throw signal.reason;
        throw err;
      } finally {
        reader.releaseLock();
      }
      return { status: response.status, bytes: length === buf.byteLength ? buf : buf.slice(0, length) };
    },
  };
}

/** The default fetcher. */
export const fetchHttp: HttpFetcher = createHttpFetcher();

const utf8Decoder = new TextDecoder('utf-8');

/** GETs `url` and decodes the body as UTF-8 (a BOM is dropped). HTTP errors are returned, not thrown. */
export async function fetchText(
  fetcher: HttpFetcher,
  url: string,
  signal?: AbortSignal,
): Promise<{ status: number; text: string }> {
  const res = await fetcher.get(url, signal ? { signal } : {});
  return { status: res.status, text: utf8Decoder.decode(res.bytes) };
}
