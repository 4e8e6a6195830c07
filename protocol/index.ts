export * from './segment-id.ts';
export * from './encoding.ts';
export * from './attestation.ts';
export const PROTOCOL_VERSION = 1;
export * from './emitter.ts';
export * from './tracker.ts';
export * from './figures.ts';
export * from './wire-types.ts';
export * from './wire.ts';
