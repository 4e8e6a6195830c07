/**
 * The RTMP ingest's configuration: what a connection may make the server hold before and after its
 * `publish` is accepted, the deadlines, the caps on pending connections, and the server's events.
 */
import type { RtmpRefusalCode } from '../../protocol/index.ts';
import { ConfigError } from '../config.ts';
import type { IngestSession } from '../channel.ts';

export interface RtmpTarget {
  acceptPublisher(session: IngestSession): boolean;
}

/** What one connection may make the server hold. */
export interface RtmpLimits {
  /** Largest message a peer may announce. */
  maxMessageBytes: number;
  /** Largest chunk size a peer may set (SetChunkSize). */
  maxChunkSizeBytes: number;
  /** Chunk streams a peer may open. */
  maxChunkStreams: number;
  /** Bytes held for the connection's unfinished messages (and handshake), all chunk streams together. */
  maxBufferedBytes: number;
  /** Bytes of replies queued for a peer that does not read them. */
  maxWriteBufferBytes: number;
}

export interface RtmpIngestOptions {
  /** Finds the channel a stream key publishes to (compare keys in constant time). */
  resolve: (streamKey: string) => RtmpTarget | undefined;
  /** RTMP application name in the URL. */
  app: string;
  /** From accept to an accepted `publish` (handshake, connect, createStream, publish), however active. */
  publishDeadlineMs: number;
  /** A connection whose socket is silent for this long is dropped. */
  idleTimeoutMs: number;
  /** How long after `publish` the first video keyframe may take. */
  firstKeyframeTimeoutMs: number;
  /** Pending (not yet authenticated) connections, server-wide. */
  maxPendingConnections: number;
  /** Pending connections from one address (IPv4) or /64 prefix (IPv6). */
  maxPendingPerAddress: number;
  /** Limits before `publish` is accepted: commands are small. */
  pendingLimits: RtmpLimits;
  /** Limits once `publish` is accepted: generous (media), still finite. */
  publisherLimits: RtmpLimits;
}

/** What callers give: every field but `resolve` is optional, limits field by field. */
export type RtmpIngestConfig = Partial<
  Omit<RtmpIngestOptions, 'resolve' | 'pendingLimits' | 'publisherLimits'>
> &
  Pick<RtmpIngestOptions, 'resolve'> & {
    pendingLimits?: Partial<RtmpLimits>;
    publisherLimits?: Partial<RtmpLimits>;
  };

const KIB = 1024;
const MIB = 1024 * 1024;

export const DEFAULT_RTMP: Omit<RtmpIngestOptions, 'resolve'> = {
  app: 'live',
  publishDeadlineMs: 5_000,
  idleTimeoutMs: 20_000,
  firstKeyframeTimeoutMs: 15_000,
  maxPendingConnections: 64,
  maxPendingPerAddress: 8,
  pendingLimits: {
    maxMessageBytes: 64 * KIB,
    maxChunkSizeBytes: 64 * KIB,
    maxChunkStreams: 8,
    maxBufferedBytes: 128 * KIB,
    maxWriteBufferBytes: 64 * KIB,
  },
  publisherLimits: {
    maxMessageBytes: 8 * MIB,
    maxChunkSizeBytes: 16 * MIB,
    maxChunkStreams: 32,
    maxBufferedBytes: 16 * MIB,
    maxWriteBufferBytes: 1 * MIB,
  },
};

/** Why a connection was turned away (stable codes; `reason` is the human-readable detail). */
export type { RtmpRefusalCode };

export type RtmpIngestEvents = {
  publish: (info: { sessionId: string; remote: string; streamKey: string }) => void;
  refused: (info: { sessionId: string; remote: string; code: RtmpRefusalCode; reason: string }) => void;
  closed: (info: { sessionId: string; clean: boolean }) => void;
};

export interface RtmpIngestStats {
  connections: number;
  /** Connections whose `publish` is not accepted yet. */
  pending: number;
  /** Bytes held for unfinished messages and handshakes, all connections together. */
  bufferedBytes: number;
  /** Of which by pending connections. */
  pendingBufferedBytes: number;
}

/** The caller's configuration merged over {@link DEFAULT_RTMP}; contradictions throw a ConfigError. */
export function rtmpOptions(config: RtmpIngestConfig): RtmpIngestOptions {
  const o: RtmpIngestOptions = {
    ...DEFAULT_RTMP,
    ...config,
    pendingLimits: { ...DEFAULT_RTMP.pendingLimits, ...config.pendingLimits },
    publisherLimits: { ...DEFAULT_RTMP.publisherLimits, ...config.publisherLimits },
  };
  validate(o);
  return o;
}

function validate(o: RtmpIngestOptions): void {
  const positive = (name: string, v: number) => {
    if (!Number.isInteger(v) || v <= 0) throw new ConfigError(`rtmp ${name} must be a positive integer`);
  };
  positive('publishDeadlineMs', o.publishDeadlineMs);
  positive('idleTimeoutMs', o.idleTimeoutMs);
  positive('firstKeyframeTimeoutMs', o.firstKeyframeTimeoutMs);
  positive('maxPendingConnections', o.maxPendingConnections);
  positive('maxPendingPerAddress', o.maxPendingPerAddress);
  if (o.maxPendingPerAddress > o.maxPendingConnections)
    throw new ConfigError('rtmp maxPendingPerAddress must not exceed maxPendingConnections');
  for (const [which, l] of [
    ['pendingLimits', o.pendingLimits],
    ['publisherLimits', o.publisherLimits],
  ] as const) {
    for (const [k, v] of Object.entries(l)) positive(`${which}.${k}`, v);
    if (l.maxBufferedBytes < l.maxMessageBytes)
      throw new ConfigError(`rtmp ${which}.maxBufferedBytes must be at least its maxMessageBytes`);
    if (l.maxChunkStreams < 2) throw new ConfigError(`rtmp ${which}.maxChunkStreams must be at least 2`);
  }
  for (const k of Object.keys(o.pendingLimits) as (keyof RtmpLimits)[])
    if (o.pendingLimits[k] > o.publisherLimits[k])
      throw new ConfigError(`rtmp pendingLimits.${k} must not exceed publisherLimits.${k}`);
}
