/**
 * Named distributions of viewers' upload capacity, in multiples of the stream's bitrate, shared by the
 * simulator (`npm run sim -- --upload-dist NAME`) and the real bench (`npm run bench -- --upload-dist
 * NAME`, which caps each Node viewer's upload at a draw). `home`: 30 % of peers below the stream's
 * bitrate (a quarter to one stream), 50 % at 1–3×, 20 % at 3–10×; uniform within each band.
 */
import type { Distribution } from './scenario.ts';

export interface UploadBand {
  readonly share: number;
  /** Multiples of the stream's bitrate. */
  readonly min: number;
  readonly max: number;
}

export const UPLOAD_DISTS: Readonly<Record<string, readonly UploadBand[]>> = {
  home: [
    { share: 0.3, min: 0.25, max: 1 },
    { share: 0.5, min: 1, max: 3 },
    { share: 0.2, min: 3, max: 10 },
  ],
};

export const isUploadDist = (name: string): boolean => Object.hasOwn(UPLOAD_DISTS, name);

/** The named distribution for a stream of `streamKbps`, as a scenario's `uploadKbps` (kbit/s). */
export function uploadDistribution(name: string, streamKbps: number): Distribution {
  if (!isUploadDist(name)) throw new RangeError(`unknown upload distribution ${JSON.stringify(name)}`);
  return {
    kind: 'bands',
    bands: UPLOAD_DISTS[name]!.map((b) => ({
      share: b.share,
      min: b.min * streamKbps,
      max: b.max * streamKbps,
    })),
  };
}
