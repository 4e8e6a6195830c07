/**
 * The origin's URL layout, defined once: the origin serves it, the engine, the player and the source's
 * tracker link build and read URLs with it. Paths are relative to the origin's public URL; every
 * channel lives under `/channels/<id>/`:
 *
 *   channel.json                            metadata, public key, live and recorded playlists
 *   live/master.m3u8, live/<r>.m3u8         live (sliding window; ENDLIST once the broadcast ended)
 *   recordings/<b>/master.m3u8, …/<r>.m3u8  a finished broadcast (VOD)
 *   segments/<r>/<seq>.ts                   a segment (immutable)
 *   segments/<r>/<seq>.json                 its attestation (immutable)
 *   attestations/<r>?from=N&limit=M         a run of attestations (for peers catching up)
 */
import { isChannelId, isRenditionName } from './segment-id.ts';

/** The URL of a path at an origin (`originUrl` without or with a trailing slash). */
export const atOrigin = (originUrl: string, path: string): string =>
  `${originUrl.replace(/\/+$/, '')}${path}`;

export const originPaths = {
  channel: (channel: string): string => `/channels/${channel}`,
  channelJson: (channel: string): string => `/channels/${channel}/channel.json`,
  liveMaster: (channel: string): string => `/channels/${channel}/live/master.m3u8`,
  recordingMaster: (channel: string, broadcast: string): string =>
    `/channels/${channel}/recordings/${encodeURIComponent(broadcast)}/master.m3u8`,
  segment: (channel: string, rendition: string, mediaSequence: number): string =>
    `/channels/${channel}/segments/${rendition}/${mediaSequence}.ts`,
  attestation: (channel: string, rendition: string, mediaSequence: number): string =>
    `/channels/${channel}/segments/${rendition}/${mediaSequence}.json`,
  attestationRun: (channel: string, rendition: string): string =>
    `/channels/${channel}/attestations/${rendition}`,
} as const;

/**
 * Segment URIs as written in media playlists, relative to the playlist: from a live playlist
 * (`live/<r>.m3u8`) and from a recording's (`recordings/<b>/<r>.m3u8`).
 */
export const playlistSegmentUri = {
  live: (rendition: string, mediaSequence: number): string => `../segments/${rendition}/${mediaSequence}.ts`,
  recording: (rendition: string, mediaSequence: number): string =>
    `../../segments/${rendition}/${mediaSequence}.ts`,
} as const;

/** The attestation's URL beside a segment's URL (`.json` for `.ts`, query kept out). */
export const attestationUrlOf = (segmentUrl: string): string => segmentUrl.replace(/\.ts(?=$|\?)/, '.json');

const SEGMENT_PATH = /\/channels\/([^/?#]+)\/segments\/([^/?#]+)\/(0|[1-9]\d{0,15})\.ts(?:$|[?#])/;

/** A segment's URL (absolute or a path) → its channel, rendition and media sequence; else undefined. */
export function parseSegmentUrl(
  url: string,
): { channel: string; rendition: string; mediaSequence: number } | undefined {
  const m = SEGMENT_PATH.exec(url);
  if (!m || !isChannelId(m[1]) || !isRenditionName(m[2])) return undefined;
  const mediaSequence = Number(m[3]);
  if (!Number.isSafeInteger(mediaSequence)) return undefined;
  return { channel: m[1], rendition: m[2], mediaSequence };
}
