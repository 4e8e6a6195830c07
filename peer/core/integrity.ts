/**
 * The product's {@link Integrity}: Ed25519 signatures and SHA-256 digests through WebCrypto (protocol's
 * attestation.ts), the engine's default. The simulator injects its own (sim/integrity.ts).
 */
import { checkSegmentBytes, importChannelKey, verifyAttestationSignature } from '../../protocol/index.ts';
import type { Integrity } from './seams.ts';

export const webCryptoIntegrity: Integrity = {
  async importKey(publicKey) {
    const key = await importChannelKey(publicKey);
    return { verify: (att) => verifyAttestationSignature(att, key) };
  },
  checkBytes: checkSegmentBytes,
};
