/**
 * Re-muxes a publisher's RTMP media into an FLV byte stream for the channel's encoder (its stdin): the
 * FLV header, the stream's metadata and codec configuration, then tags from the next video keyframe on.
 * When the encoder lags, reading from the publisher pauses until it catches up (backpressure).
 */
import { Readable } from 'node:stream';
import { encodeAmf0, type AmfValue } from './amf0.ts';
import { AUDIO, DATA_AMF0, VIDEO } from './chunks.ts';

/** The socket the media comes from, as far as backpressure goes. */
export interface FlvSource {
  pause(): void;
  resume(): void;
}

const isAvcConfig = (type: number, p: Buffer) => type === VIDEO && (p[0]! & 0x0f) === 7 && p[1] === 0;
const isAacConfig = (type: number, p: Buffer) => type === AUDIO && p[0]! >> 4 === 10 && p[1] === 0;

/** A video message that starts a group of pictures (not the codec configuration). */
export function isKeyframe(type: number, payload: Buffer): boolean {
  return type === VIDEO && ((payload[0]! >> 4) & 0x07) === 1 && !isAvcConfig(type, payload);
}

export class FlvRemuxer {
  readonly #source: FlvSource;
  #stream: Readable | undefined;
  #needsKeyframe = true;
  #baseTs = 0;
  #readPaused = false;
  #metadata: { [key: string]: AmfValue } | undefined;
  #avcConfig: Buffer | undefined;
  #aacConfig: Buffer | undefined;
  #sawAudio = false;
  /** Whether the FLV carries audio (settled at the first keyframe). */
  hasAudio = false;

  constructor(source: FlvSource) {
    this.#source = source;
  }

  /** The source is not read because the encoder lags. */
  get readPaused(): boolean {
    return this.#readPaused;
  }

  /** A data message (`onMetaData`, possibly wrapped in `@setDataFrame`). */
  onData(values: AmfValue[]): void {
    const [name, ...rest] = values;
    const [first, second] = name === '@setDataFrame' ? rest : values;
    if (first === 'onMetaData' && typeof second === 'object' && second !== null && !Array.isArray(second))
      this.#metadata = second as { [key: string]: AmfValue };
  }

  /** Keeps the codec configuration an audio or video message carries; notes that audio was seen. */
  noteConfig(type: number, payload: Buffer): void {
    if (isAvcConfig(type, payload)) this.#avcConfig = payload;
    if (isAacConfig(type, payload)) this.#aacConfig = payload;
    if (type !== VIDEO) this.#sawAudio = true;
  }

  /** Decides whether the FLV carries audio: the metadata says so, or audio came before the keyframe. */
  settleAudio(): void {
    const meta = this.#metadata;
    this.hasAudio = meta ? meta.audiocodecid !== undefined || this.#sawAudio : this.#sawAudio;
  }

  /**
   * A new FLV byte stream (the previous one ends): header, metadata, codec config, then media from the
   * next keyframe. `ended`: the publisher is already gone, the stream ends after its preamble.
   */
  open(ended: boolean): Readable {
    this.#stream?.push(null);
    const stream = new Readable({
      highWaterMark: 4 * 1024 * 1024,
      read: () => {
        if (this.#stream !== stream || !this.#readPaused) return;
        this.#readPaused = false;
        this.#source.resume();
      },
    });
    this.#stream = stream;
    this.#needsKeyframe = true;
    const header = Buffer.from([0x46, 0x4c, 0x56, 0x01, this.hasAudio ? 0x05 : 0x01, 0, 0, 0, 9, 0, 0, 0, 0]);
    stream.push(header);
    if (this.#metadata) this.#pushTag(DATA_AMF0, 0, encodeAmf0('onMetaData', this.#metadata));
    if (this.#avcConfig) this.#pushTag(VIDEO, 0, this.#avcConfig);
    if (this.hasAudio && this.#aacConfig) this.#pushTag(AUDIO, 0, this.#aacConfig);
    if (ended) stream.push(null);
    return stream;
  }

  /** An audio or video message of the accepted publisher. */
  media(type: number, timestamp: number, payload: Buffer, keyframe: boolean): void {
    if (!this.#stream) return;
    if (this.#needsKeyframe) {
      if (!keyframe) return;
      this.#needsKeyframe = false;
      this.#baseTs = timestamp;
    }
    if (type !== VIDEO && !this.hasAudio) return;
    this.#pushTag(type, Math.max(0, timestamp - this.#baseTs), payload);
  }

  /** Ends the current stream (the encoder sees the end of its input). */
  end(): void {
    this.#stream?.push(null);
  }

  #pushTag(type: number, timestamp: number, data: Buffer): void {
    const stream = this.#stream;
    if (!stream) return;
    const header = Buffer.alloc(11);
    header[0] = type;
    header.writeUIntBE(data.length, 1, 3);
    header.writeUIntBE(timestamp & 0xffffff, 4, 3);
    header[7] = (timestamp >>> 24) & 0xff;
    const trailer = Buffer.alloc(4);
    trailer.writeUInt32BE(11 + data.length);
    if (!stream.push(Buffer.concat([header, data, trailer])) && !this.#readPaused) {
      // The encoder lags: stop reading until it catches up (the peer's TCP window holds the rest).
      this.#readPaused = true;
      this.#source.pause();
    }
  }
}
