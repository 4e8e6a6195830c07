/** The channel's Ed25519 signing key: created once, kept in the data directory, never leaves the source. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  attestationPayload,
  registrationPayload,
  toBase64Url,
  type Attestation,
  type AttestationBody,
  type ChannelRegistration,
  type UnsignedRegistration,
} from '../protocol/index.ts';

export class ChannelSigner {
  readonly #privateKey: crypto.KeyObject;
  /** Raw 32-byte public key, base64url: what the origin serves and peers import. */
  readonly publicKey: string;
  readonly publicKeyPem: string;

  private constructor(privateKey: crypto.KeyObject) {
    this.#privateKey = privateKey;
    const pub = crypto.createPublicKey(privateKey);
    const jwk = pub.export({ format: 'jwk' });
    if (typeof jwk.x !== 'string') throw new Error('Ed25519 key without x coordinate');
    this.publicKey = jwk.x;
    this.publicKeyPem = pub.export({ format: 'pem', type: 'spki' }).toString();
  }

  /** A fresh key that lives only in memory (tests, tools). */
  static generate(): ChannelSigner {
    return new ChannelSigner(crypto.generateKeyPairSync('ed25519').privateKey);
  }

  /** Loads `file`, or creates it (mode 0600) when it does not exist yet. */
  static loadOrCreate(file: string): ChannelSigner {
    if (fs.existsSync(file)) {
      const key = crypto.createPrivateKey(fs.readFileSync(file));
      if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${file} is not an Ed25519 private key`);
      return new ChannelSigner(key);
    }
    const { privateKey } = crypto.generateKeyPairSync('ed25519');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    fs.renameSync(tmp, file);
    return new ChannelSigner(privateKey);
  }

  /** Signs a channel registration: proof for the tracker that this key's owner sent it. */
  signRegistration(body: UnsignedRegistration): ChannelRegistration {
    if (body.publicKey !== this.publicKey) throw new Error('registration names another public key');
    const signature = crypto.sign(null, registrationPayload(body), this.#privateKey);
    return { ...body, signature: toBase64Url(signature) };
  }

  sign(body: AttestationBody): Attestation {
    const signature = crypto.sign(null, attestationPayload(body), this.#privateKey);
    return { ...body, signature: toBase64Url(signature) };
  }
}

export const sha256HexSync = (bytes: Uint8Array): string =>
  crypto.createHash('sha256').update(bytes).digest('hex');

/** Synchronous twin of protocol's `attestationHash`, for the publication hot path. */
export const attestationHashSync = (body: AttestationBody): string => sha256HexSync(attestationPayload(body));
