/** PROXY: the header carries the real client. LOCAL: the proxy itself connected (health checks). */
export type ProxyCommand = 'PROXY' | 'LOCAL';
/** Address family of the header: IPv4, IPv6, UNIX paths, or none. */
export type ProxyFamily = 'INET' | 'INET6' | 'UNIX' | 'UNSPEC';
/** Transport of the proxied connection: TCP (STREAM), UDP (DGRAM), or none. */
export type ProxyTransport = 'STREAM' | 'DGRAM' | 'UNSPEC';

/** An IP endpoint: address in text form (dotted quad or RFC 5952 IPv6) and port. */
export interface IProxyIpAddress {
  address: string;
  port: number;
}

/** A UNIX socket endpoint (v2 family UNIX). */
export interface IProxyUnixAddress {
  path: string;
}

export type ProxyAddress = IProxyIpAddress | IProxyUnixAddress;

/** One TLV exactly as received: type and raw value bytes. */
export interface ITlv {
  type: number;
  value: Buffer;
}

/** Decoded PP2_TYPE_SSL. String sub-TLVs are decoded; the newer ones stay raw in `subTlvs`. */
export interface ISslInfo {
  /** Bit field of PP2_CLIENT_SSL (0x01), PP2_CLIENT_CERT_CONN (0x02), PP2_CLIENT_CERT_SESS (0x04). */
  client: number;
  /** 0 when the client presented a certificate that verified (or none was required). */
  verify: number;
  version?: string;
  cn?: string;
  cipher?: string;
  sigAlg?: string;
  keyAlg?: string;
  /** Every sub-TLV in order, raw (including group, sig scheme and client certificate). */
  subTlvs: ITlv[];
}

/**
 * SmartProxy 21's header summary, kept so existing callers work unchanged.
 * For `UNKNOWN` (and v2 LOCAL/UNSPEC/UNIX) the addresses are empty and ports 0.
 */
export interface IProxyInfo {
  protocol: 'TCP4' | 'TCP6' | 'UNKNOWN';
  sourceIP: string;
  sourcePort: number;
  destinationIP: string;
  destinationPort: number;
}

/** The full truth of one received header. TLV accessors decode on first use. */
export interface IProxyHeader {
  version: 1 | 2;
  command: ProxyCommand;
  family: ProxyFamily;
  transport: ProxyTransport;
  /** null for LOCAL, UNSPEC and v1 UNKNOWN: use the socket's own endpoints then. */
  source: ProxyAddress | null;
  destination: ProxyAddress | null;
  /** Every TLV in order, duplicates kept; empty for v1. */
  readonly tlvs: readonly ITlv[];
  readonly alpn: string | undefined;
  readonly authority: string | undefined;
  readonly uniqueId: Buffer | undefined;
  readonly crc32c: number | undefined;
  readonly ssl: ISslInfo | undefined;
  readonly netns: string | undefined;
  /** AWS PrivateLink VPC endpoint id (TLV 0xEA, sub-type 0x01). */
  readonly awsVpceId: string | undefined;
  /** Azure Private Link LINKID (TLV 0xEE, sub-type 0x01, u32 little-endian). */
  readonly azureLinkId: number | undefined;
  /** GCP Private Service Connect connection id (TLV 0xE0, u64 big-endian). */
  readonly gcpPscConnectionId: bigint | undefined;
  /** The first TLV of a type, or undefined. */
  getTlv(type: number): ITlv | undefined;
  /** The SmartProxy 21 summary of this header. */
  toProxyInfo(): IProxyInfo;
}

/**
 * complete: a header of `consumed` bytes; incomplete: a prefix that may still become one (push
 * more); none: these bytes can never be a header (hand them on as data).
 */
export type DecodeResult =
  | { status: 'complete'; header: IProxyHeader; consumed: number }
  | { status: 'incomplete' }
  | { status: 'none' };

export interface IDecodeOptions {
  /** Largest v2 header (16 + length) accepted, in bytes. Default 4096; at most 65551. */
  maxHeaderSize?: number;
  /** Accept v1 text headers. Default true. */
  allowV1?: boolean;
  /** Accept v2 binary headers. Default true. */
  allowV2?: boolean;
}

/** What to put in a generated header. `IProxyInfo` (SmartProxy 21) is accepted too. */
export interface IProxyHeaderInit {
  /** Default 'PROXY'. LOCAL carries no addresses (v1 has no LOCAL: it writes UNKNOWN). */
  command?: ProxyCommand;
  /** Default 'STREAM'. */
  transport?: ProxyTransport;
  /** Omit both for UNSPEC (v2) / UNKNOWN (v1). */
  source?: ProxyAddress;
  destination?: ProxyAddress;
}

export interface IGenerateOptions {
  /** Default 1. */
  version?: 1 | 2;
  /** v2 only: TLVs written in this order after the addresses. */
  tlvs?: readonly ITlv[];
  /** v2 only: append a CRC32C TLV computed over the finished header. */
  crc32c?: boolean;
}
