/**
 * ProxyProtocolParser (one-shot) and ProxyProtocolDecoder (incremental, for sockets).
 * The parser never guesses: a buffer is a complete header, a prefix that may still become one,
 * something that can never be one, or a typed ProxyProtocolError.
 */
import { ProxyProtocolError } from '../errors.js';
import * as C from './constants.js';
import { type DatagramResult, decodeDatagram } from './datagram.js';
import { generateV1, parseV1 } from './v1.js';
import { checkV2Fixed, generateV2, parseV2 } from './v2.js';
import type {
  DecodeResult,
  IDecodeOptions,
  IGenerateOptions,
  IProxyHeader,
  IProxyHeaderInit,
  IProxyInfo,
  IProxyIpAddress,
  ProxyAddress,
} from './types.js';

const INCOMPLETE: DecodeResult = Object.freeze({ status: 'incomplete' });
const NONE: DecodeResult = Object.freeze({ status: 'none' });

/** What the first bytes of a stream say about a PROXY header. */
export type SignatureMatch = 'v1' | 'v2' | 'incomplete' | 'none';

interface IResolvedOptions {
  maxHeaderSize: number;
  allowV1: boolean;
  allowV2: boolean;
}

const DEFAULT_OPTIONS: IResolvedOptions = Object.freeze({
  maxHeaderSize: C.DEFAULT_MAX_HEADER_SIZE,
  allowV1: true,
  allowV2: true,
});

function resolveOptions(opts: IDecodeOptions | undefined): IResolvedOptions {
  if (opts === undefined) return DEFAULT_OPTIONS;
  const maxHeaderSize = opts.maxHeaderSize ?? C.DEFAULT_MAX_HEADER_SIZE;
  if (!Number.isInteger(maxHeaderSize) || maxHeaderSize < C.V2_FIXED_LENGTH || maxHeaderSize > C.V2_MAX_TOTAL_LENGTH) {
    throw new ProxyProtocolError('ERR_PP_BAD_INPUT', `maxHeaderSize must be an integer in 16..65551, got ${maxHeaderSize}`);
  }
  return { maxHeaderSize, allowV1: opts.allowV1 ?? true, allowV2: opts.allowV2 ?? true };
}

function prefixMatches(buf: Uint8Array, signature: Uint8Array): boolean {
  const n = buf.length < signature.length ? buf.length : signature.length;
  for (let i = 0; i < n; i++) if (buf[i] !== signature[i]) return false;
  return true;
}

/**
 * Classifies the start of a stream; only a whole signature counts as one: the 12 bytes of v2,
 * the 5 bytes "PROXY" of v1 (whatever follows them is the v1 parser's to judge).
 */
export function detectSignature(buf: Buffer): SignatureMatch {
  if (buf.length === 0) return 'incomplete';
  const signature = buf[0] === C.V2_SIGNATURE[0] ? C.V2_SIGNATURE : buf[0] === C.V1_SIGNATURE[0] ? C.V1_SIGNATURE : null;
  if (signature === null || !prefixMatches(buf, signature)) return 'none';
  if (buf.length < signature.length) return 'incomplete';
  return signature === C.V2_SIGNATURE ? 'v2' : 'v1';
}

function decodeWith(buf: Buffer, options: IResolvedOptions): DecodeResult {
  const match = detectSignature(buf);
  if (match === 'v2') {
    if (!options.allowV2) throw new ProxyProtocolError('ERR_PP_VERSION_DISABLED', 'a v2 header arrived but v2 is not allowed');
    const header = parseV2(buf, options.maxHeaderSize);
    return header === null ? INCOMPLETE : { status: 'complete', header, consumed: header.length };
  }
  if (match === 'v1') {
    if (!options.allowV1) throw new ProxyProtocolError('ERR_PP_VERSION_DISABLED', 'a v1 header arrived but v1 is not allowed');
    const header = parseV1(buf);
    return header === null ? INCOMPLETE : { status: 'complete', header, consumed: header.length };
  }
  return match === 'incomplete' ? INCOMPLETE : NONE;
}

function isProxyInfo(info: IProxyInfo | IProxyHeaderInit): info is IProxyInfo {
  return 'sourceIP' in info;
}

function toInit(info: IProxyInfo | IProxyHeaderInit): IProxyHeaderInit {
  if (!isProxyInfo(info)) return info;
  if (info.protocol === 'UNKNOWN') return {};
  return {
    source: { address: info.sourceIP, port: info.sourcePort },
    destination: { address: info.destinationIP, port: info.destinationPort },
  };
}

function ipOnly(address: ProxyAddress | undefined): IProxyIpAddress | null {
  return address !== undefined && 'address' in address ? address : null;
}

export class ProxyProtocolParser {
  /**
   * SmartProxy 21-compatible one-shot parse. `proxyInfo` is null (and `remainingData` the input)
   * when the buffer holds no header or only part of one; an invalid header throws.
   */
  static parse(buf: Buffer): { proxyInfo: IProxyInfo | null; remainingData: Buffer } {
    const result = decodeWith(buf, DEFAULT_OPTIONS);
    if (result.status !== 'complete') return { proxyInfo: null, remainingData: buf };
    return { proxyInfo: result.header.toProxyInfo(), remainingData: buf.subarray(result.consumed) };
  }

  /** Precise one-shot decode of the header at the start of `buf`. */
  static decode(buf: Buffer, opts?: IDecodeOptions): DecodeResult {
    return decodeWith(buf, resolveOptions(opts));
  }

  /** One UDP datagram: its v2 header (DGRAM) and a view of the payload, or no header. */
  static decodeDatagram(datagram: Buffer, opts?: Pick<IDecodeOptions, 'maxHeaderSize'>): DatagramResult {
    return decodeDatagram(datagram, resolveOptions(opts).maxHeaderSize);
  }

  /** Whether `buf` starts with a whole v1/v2 signature, a prefix of one, or neither. */
  static detect(buf: Buffer): SignatureMatch {
    return detectSignature(buf);
  }

  /** Writes one header. Accepts SmartProxy 21's IProxyInfo or the richer IProxyHeaderInit. */
  static generate(info: IProxyInfo | IProxyHeaderInit, opts: IGenerateOptions = {}): Buffer {
    const init = toInit(info);
    const command = init.command ?? 'PROXY';
    const version = opts.version ?? 1;
    if (version === 1) {
      if (command === 'LOCAL') return generateV1(null, null);
      return generateV1(ipOnly(init.source), ipOnly(init.destination));
    }
    if (version !== 2) throw new ProxyProtocolError('ERR_PP_BAD_INPUT', `version must be 1 or 2, got ${String(version)}`);
    return generateV2({
      command,
      transport: init.transport ?? 'STREAM',
      source: command === 'PROXY' ? (init.source ?? null) : null,
      destination: command === 'PROXY' ? (init.destination ?? null) : null,
      tlvs: opts.tlvs ?? [],
      crc32c: opts.crc32c ?? false,
    });
  }
}

/**
 * Incremental decoder for one stream: push chunks as they arrive, split anywhere.
 * While a header is incomplete it holds at most the header's own bytes (≤ maxHeaderSize, or
 * 107 for v1); once the v2 length is known it copies into one buffer of exactly that size.
 * After 'complete' or 'none', `remaining` holds the bytes that follow (for 'none', all of them).
 */
export class ProxyProtocolDecoder {
  /** Bytes after the header (on 'complete'), or every byte pushed (on 'none'). */
  public remaining: Buffer = Buffer.alloc(0);
  /** The header, once complete. */
  public header: IProxyHeader | null = null;
  private readonly options: IResolvedOptions;
  private pending: Buffer | null = null;
  private target: Buffer | null = null;
  private filled = 0;
  private finished = false;

  constructor(opts?: IDecodeOptions) {
    this.options = resolveOptions(opts);
  }

  /** Bytes held while waiting for the rest of a header. */
  get bufferedLength(): number {
    return this.target !== null ? this.filled : (this.pending?.length ?? 0);
  }

  push(chunk: Buffer): DecodeResult {
    if (this.finished) throw new ProxyProtocolError('ERR_PP_DECODER_FINISHED', 'this decoder already produced its result');
    if (this.target !== null) return this.fillTarget(chunk);
    const data = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    let result: DecodeResult;
    try {
      result = decodeWith(data, this.options);
    } catch (err) {
      this.finish();
      throw err;
    }
    if (result.status === 'incomplete') {
      if (data.length >= C.V2_FIXED_LENGTH && data[0] === C.V2_SIGNATURE[0]) {
        const total = checkV2Fixed(data, this.options.maxHeaderSize);
        this.target = Buffer.allocUnsafe(total);
        data.copy(this.target, 0);
        this.filled = data.length;
        this.pending = null;
      } else {
        // Copy: the caller may reuse its chunk buffer; this is at most 107 bytes.
        this.pending = this.pending === null ? Buffer.from(data) : data;
      }
      return result;
    }
    this.finish();
    if (result.status === 'complete') {
      this.header = result.header;
      this.remaining = data.subarray(result.consumed);
    } else {
      this.remaining = data;
    }
    return result;
  }

  private fillTarget(chunk: Buffer): DecodeResult {
    const target = this.target as Buffer;
    const needed = target.length - this.filled;
    const taken = chunk.length < needed ? chunk.length : needed;
    chunk.copy(target, this.filled, 0, taken);
    this.filled += taken;
    if (this.filled < target.length) return INCOMPLETE;
    this.finish();
    const result = decodeWith(target, this.options);
    if (result.status === 'complete') {
      this.header = result.header;
      this.remaining = chunk.subarray(taken);
    }
    return result;
  }

  private finish(): void {
    this.finished = true;
    this.pending = null;
    this.target = null;
  }
}
