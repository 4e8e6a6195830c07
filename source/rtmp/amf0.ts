/** AMF0 (Action Message Format) codec: the subset RTMP publishers use. Decoding is bounds-checked. */

export type AmfValue =
  number | boolean | string | null | undefined | Date | AmfValue[] | { [key: string]: AmfValue };

export class AmfError extends Error {
  override name = 'AmfError';
}

const MAX_DEPTH = 16;

export function decodeAmf0(buf: Buffer): AmfValue[] {
  const values: AmfValue[] = [];
  const state = { pos: 0 };
  while (state.pos < buf.length) values.push(readValue(buf, state, 0));
  return values;
}

function need(buf: Buffer, state: { pos: number }, n: number): void {
  if (state.pos + n > buf.length) throw new AmfError('truncated AMF0 data');
}

function readString(buf: Buffer, state: { pos: number }, long = false): string {
  need(buf, state, long ? 4 : 2);
  const len = long ? buf.readUInt32BE(state.pos) : buf.readUInt16BE(state.pos);
  state.pos += long ? 4 : 2;
  need(buf, state, len);
  const s = buf.toString('utf8', state.pos, state.pos + len);
  state.pos += len;
  return s;
}

function readProps(buf: Buffer, state: { pos: number }, depth: number): { [key: string]: AmfValue } {
  const obj: { [key: string]: AmfValue } = Object.create(null);
  for (;;) {
    const key = readString(buf, state);
    if (key === '') {
      need(buf, state, 1);
      if (buf[state.pos] !== 0x09) throw new AmfError('AMF0 object without end marker');
      state.pos++;
      return obj;
    }
    obj[key] = readValue(buf, state, depth + 1);
  }
}

function readValue(buf: Buffer, state: { pos: number }, depth: number): AmfValue {
  if (depth > MAX_DEPTH) throw new AmfError('AMF0 nesting too deep');
  need(buf, state, 1);
  const marker = buf[state.pos++]!;
  switch (marker) {
    case 0x00: {
      need(buf, state, 8);
      const n = buf.readDoubleBE(state.pos);
      state.pos += 8;
      return n;
    }
    case 0x01:
      need(buf, state, 1);
      return buf[state.pos++] !== 0;
    case 0x02:
      return readString(buf, state);
    case 0x03:
      return readProps(buf, state, depth);
    case 0x05:
      return null;
    case 0x06:
      return undefined;
    case 0x08:
      need(buf, state, 4);
      state.pos += 4; // approximate count, the end marker is authoritative
      return readProps(buf, state, depth);
    case 0x0a: {
      need(buf, state, 4);
      const count = buf.readUInt32BE(state.pos);
      state.pos += 4;
      if (count > buf.length - state.pos) throw new AmfError('AMF0 strict array longer than its message');
      const arr: AmfValue[] = [];
      for (let i = 0; i < count; i++) arr.push(readValue(buf, state, depth + 1));
      return arr;
    }
    case 0x0b: {
      need(buf, state, 10);
      const ms = buf.readDoubleBE(state.pos);
      state.pos += 10;
      return new Date(ms);
    }
    case 0x0c:
      return readString(buf, state, true);
    default:
      throw new AmfError(`unsupported AMF0 marker 0x${marker.toString(16)}`);
  }
}

export function encodeAmf0(...values: AmfValue[]): Buffer {
  const parts: Buffer[] = [];
  const str = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(b.length);
    parts.push(len, b);
  };
  const write = (v: AmfValue): void => {
    if (typeof v === 'number') {
      const b = Buffer.alloc(9);
      b[0] = 0x00;
      b.writeDoubleBE(v, 1);
      parts.push(b);
    } else if (typeof v === 'boolean') parts.push(Buffer.from([0x01, v ? 1 : 0]));
    else if (typeof v === 'string') {
      parts.push(Buffer.from([0x02]));
      str(v);
    } else if (v === null) parts.push(Buffer.from([0x05]));
    else if (v === undefined) parts.push(Buffer.from([0x06]));
    else if (v instanceof Date) {
      const b = Buffer.alloc(11);
      b[0] = 0x0b;
      b.writeDoubleBE(v.getTime(), 1);
      parts.push(b);
    } else if (Array.isArray(v)) {
      const b = Buffer.alloc(5);
      b[0] = 0x0a;
      b.writeUInt32BE(v.length, 1);
      parts.push(b);
      v.forEach(write);
    } else {
      parts.push(Buffer.from([0x03]));
      for (const [k, val] of Object.entries(v)) {
        str(k);
        write(val);
      }
      parts.push(Buffer.from([0x00, 0x00, 0x09]));
    }
  };
  values.forEach(write);
  return Buffer.concat(parts);
}
