/**
 * An hls.js fragment loader on top of the PeerTV engine: segments come from neighbours or the origin as
 * the engine decides (always verified), with the playback deadline taken from the video element. It
 * falls back to hls.js's own HTTP loader for anything the engine cannot serve (and for everything
 * until the engine is ready: playback never waits for P2P), and reports honest
 * timings so hls.js's ABR keeps choosing the right rendition.
 */
import type Hls from 'hls.js';
import type {
  FragmentLoaderContext,
  HlsConfig,
  Loader,
  LoaderCallbacks,
  LoaderConfiguration,
  LoaderStats,
} from 'hls.js';
import type { PeerEngine } from '../../peer/index.ts';
import { parseSegmentUrl } from '../../protocol/index.ts';

type LoaderClass = new (config: HlsConfig) => Loader<FragmentLoaderContext>;

/** A segment of `channel` at the origin (its URL layout, protocol's) → rendition and sequence. */
export function segmentFromUrl(
  url: string,
  channel: string,
): { rendition: string; mediaSequence: number } | undefined {
  const seg = parseSegmentUrl(url);
  if (!seg || seg.channel !== channel) return undefined;
  return { rendition: seg.rendition, mediaSequence: seg.mediaSequence };
}

export interface LoaderEnv {
  engine: () => PeerEngine | undefined;
  channel: string;
  video: HTMLVideoElement;
  /** How long a segment took when it was actually fetched (for prefetched ones served from memory). */
  fetchMs: (rendition: string, seq: number) => number | undefined;
  /** A segment fetched here from the origin while the engine was not ready: its bytes, to share. */
  adopt?: (rendition: string, seq: number, bytes: Uint8Array) => void;
}

const newStats = (): LoaderStats => ({
  aborted: false,
  loaded: 0,
  retry: 0,
  total: 0,
  chunkCount: 0,
  bwEstimate: 0,
  loading: { start: 0, first: 0, end: 0 },
  parsing: { start: 0, end: 0 },
  buffering: { start: 0, first: 0, end: 0 },
});

export function makeFragmentLoader(env: LoaderEnv, Fallback: LoaderClass): LoaderClass {
  return class PeerTVFragmentLoader implements Loader<FragmentLoaderContext> {
    context: FragmentLoaderContext | null = null;
    stats: LoaderStats = newStats();
    #fallback: Loader<FragmentLoaderContext> | undefined;
    #config: HlsConfig;
    #done = false;
    #aborting = false;
    #destroyed = false;
    #key: { rendition: string; mediaSequence: number } | undefined;

    constructor(config: HlsConfig) {
      this.#config = config;
    }

    load(
      context: FragmentLoaderContext,
      config: LoaderConfiguration,
      callbacks: LoaderCallbacks<FragmentLoaderContext>,
    ): void {
      this.context = context;
      const engine = env.engine();
      const seg = segmentFromUrl(context.url, env.channel);
      // hls.js marks "no byte range" with rangeEnd 0.
      const ranged = (context.rangeEnd ?? 0) > 0 || (context.rangeStart ?? 0) > 0;
      if (!engine || engine.destroyed || !seg || ranged || context.part) {
        this.#useFallback(context, config, callbacks);
        return;
      }
      // Not ready yet (joining, fetching the key): startup never waits for it. The origin serves this
      // segment now, and the engine gets a copy to verify and share (hls.js may transfer the buffer).
      if (!engine.ready) {
        const adopt = env.adopt;
        this.#useFallback(context, config, {
          ...callbacks,
          onSuccess: (response, stats, ctx, details) => {
            if (adopt && response.data instanceof ArrayBuffer)
              adopt(seg.rendition, seg.mediaSequence, new Uint8Array(response.data.slice(0)));
            callbacks.onSuccess(response, stats, ctx, details);
          },
        });
        return;
      }
      this.#key = seg;
      const stats = this.stats;
      stats.loading.start = performance.now();
      // The playhead reaches this fragment in (start − currentTime) seconds; before playback, now.
      const video = env.video;
      const aheadS = video.readyState >= 2 && !video.paused ? context.frag.start - video.currentTime : 0;
      const deadlineAt = engine.clock.now() + Math.max(0, aheadS) * 1000;
      engine.load(seg.rendition, seg.mediaSequence, deadlineAt).then(
        (r) => {
          if (this.#done) return;
          this.#done = true;
          const now = performance.now();
          // Served from memory (fetched earlier): report the time the real fetch took, so ABR sees the
          // network, not the cache.
          const took =
            r.source === 'cache'
              ? (env.fetchMs(seg.rendition, seg.mediaSequence) ?? now - stats.loading.start)
              : now - stats.loading.start;
          stats.loading.start = now - Math.max(1, took);
          stats.loading.first = stats.loading.start + Math.min(took, 1);
          stats.loading.end = now;
          stats.loaded = stats.total = r.bytes.byteLength;
          stats.chunkCount = 1;
          const data = r.bytes.buffer.slice(
            r.bytes.byteOffset,
            r.bytes.byteOffset + r.bytes.byteLength,
          ) as ArrayBuffer;
          callbacks.onSuccess({ url: context.url, data }, stats, context, null);
        },
        () => {
          if (this.#done) return;
          // The engine could not serve it (destroyed, dropped, origin trouble): hls.js's own loader tries.
          this.#useFallback(context, config, callbacks);
        },
      );
    }

    #useFallback(
      context: FragmentLoaderContext,
      config: LoaderConfiguration,
      callbacks: LoaderCallbacks<FragmentLoaderContext>,
    ): void {
      this.#done = true;
      this.#fallback = new Fallback(this.#config);
      this.stats = this.#fallback.stats;
      this.#fallback.load(context, config, callbacks);
    }

    abort(): void {
      // hls.js's own loader calls back into hls.js on abort, which destroys this loader: guard re-entry.
      if (this.#aborting) return;
      this.#aborting = true;
      this.stats.aborted = true;
      this.#fallback?.abort();
      if (!this.#done && this.#key) env.engine()?.drop(this.#key.rendition, this.#key.mediaSequence);
      this.#done = true;
    }

    destroy(): void {
      if (this.#destroyed) return;
      this.#destroyed = true;
      // hls.js destroys a loader from inside its success callback: the fallback's own destroy lets go
      // of its callbacks (aborting it would report the finished load as aborted).
      if (this.#fallback) this.#fallback.destroy();
      else this.abort();
      this.context = null;
    }
  };
}

export type { Hls };
