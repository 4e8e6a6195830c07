/**
 * What the origin says about a channel before anything plays: its public key (from `channel.json`:
 * the key comes from the origin, never from a peer nor from the tracker) and its ladder (the master
 * playlist, live or a recording's), renditions sorted by bandwidth.
 */
import { atOrigin, originPaths } from '../../protocol/index.ts';
import { EngineError, type Variant } from './engine-options.ts';
import { parseMasterPlaylist } from './hls.ts';

export interface OriginChannel {
  publicKey: string;
  /** Renditions of the master playlist (with their media playlists' URLs), lowest bandwidth first. */
  variants: (Variant & { url: string })[];
}

export async function loadOriginChannel(
  getText: (url: string) => Promise<string>,
  originUrl: string,
  channel: string,
  /** A master playlist to play instead of the live one (a recording). */
  masterUrl: string | undefined,
): Promise<OriginChannel> {
  const meta = JSON.parse(await getText(atOrigin(originUrl, originPaths.channelJson(channel)))) as unknown;
  const o = (meta ?? {}) as { publicKey?: unknown; live?: { master?: unknown } | null };
  if (typeof o.publicKey !== 'string')
    throw new EngineError('origin-unavailable', 'channel.json without a public key');
  const master = masterUrl ?? (typeof o.live?.master === 'string' ? o.live.master : undefined);
  if (!master) throw new EngineError('channel-offline', `channel ${channel} is not broadcasting`);
  const parsed = parseMasterPlaylist(await getText(master), master);
  const variants = parsed.variants
    .map((v) => ({
      name: v.name,
      bandwidthBps: v.bandwidthBps,
      width: v.width,
      height: v.height,
      url: v.url,
    }))
    .sort((a, b) => a.bandwidthBps - b.bandwidthBps);
  if (variants.length === 0) throw new EngineError('playlist-invalid', 'master playlist without variants');
  return { publicKey: o.publicKey, variants };
}
