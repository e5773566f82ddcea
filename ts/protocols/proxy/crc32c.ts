/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as PP2_TYPE_CRC32C requires.
 * Table-driven, one byte per step: headers are small, so slicing tricks would not pay back.
 */
const POLYNOMIAL_REFLECTED = 0x82f63b78;
const TABLE = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLYNOMIAL_REFLECTED : c >>> 1;
  TABLE[n] = c;
}

const INITIAL = 0xffffffff;

/** Continues a running CRC (pre-inverted state) over bytes [start, end). */
export function crc32cUpdate(state: number, bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = state;
  for (let i = start; i < end; i++) c = TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return c;
}

/** Feeds `count` zero bytes, as the checksum field counts while it is being computed. */
export function crc32cUpdateZeros(state: number, count: number): number {
  let c = state;
  for (let i = 0; i < count; i++) c = TABLE[c & 0xff] ^ (c >>> 8);
  return c;
}

export function crc32cStart(): number {
  return INITIAL;
}

export function crc32cFinish(state: number): number {
  return (state ^ INITIAL) >>> 0;
}

/** CRC32C of a whole buffer: crc32c(Buffer.from('123456789')) === 0xE3069283. */
export function crc32c(bytes: Uint8Array): number {
  return crc32cFinish(crc32cUpdate(INITIAL, bytes));
}
