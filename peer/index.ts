/** The peer room's portable face (browser and Node); Node-only parts: `peer/node/index.ts`. */
export {
  PeerEngine,
  DEFAULT_ENGINE,
  EngineError,
  type EngineOptions,
  type EngineDeps,
  type EngineEvents,
  type LoadResult,
  type KnownSegment,
  type Variant,
} from './core/engine.ts';
export {
  HeadlessPlayer,
  DEFAULT_PLAYER,
  type PlayerOptions,
  type PlayerEvents,
  type PlayerState,
} from './core/player.ts';
export {
  MemorySegmentStore,
  type MemorySegmentStoreOptions,
  DEFAULT_SEGMENT_STORE_CAPACITY,
  type SegmentStore,
} from './core/segment-store.ts';
export { DEFAULT_BUDGET } from './core/budget.ts';
export { ManualClock } from './core/clock.ts';
export { MinHeap } from './core/heap.ts';
export { MemoryNetwork } from './core/memory-transport.ts';
export { UploadManager, DEFAULT_UPLOAD, type UploadOptions } from './core/upload.ts';
export { Neighbour } from './core/neighbour.ts';
export { parseMasterPlaylist, parseMediaPlaylist } from './core/hls.ts';
export type {
  Clock,
  HttpFetcher,
  HttpResponse,
  Integrity,
  LinkRoute,
  NatProber,
  PeerLink,
  RecordVerifier,
  TimerHandle,
  Transport,
  TrackerConnection,
  TrackerConnectionEvents,
} from './core/seams.ts';
export { webCryptoIntegrity } from './core/integrity.ts';
export { realClock } from './platform/clock.ts';
export { fetchHttp, createHttpFetcher } from './platform/http.ts';
export { SimplePeerTransport, loopbackCandidatesOnly } from './platform/simple-peer-transport.ts';
export { IceNatProber, natTypeFromGathering, type IceGathering } from './platform/ice-nat-probe.ts';
export { SocketIoTrackerConnection } from './platform/tracker-connection.ts';
