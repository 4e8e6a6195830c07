/**
 * The peer room's Node-only face (the headless Node peer and its WebRTC implementation); the portable
 * engine, which the browser bundle also carries, is `peer/index.ts`.
 */
export { startNodePeer, type NodePeer, type NodePeerOptions } from './node-peer.ts';
export { loadWrtc } from './wrtc.ts';
