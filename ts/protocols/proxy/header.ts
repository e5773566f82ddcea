import { formatIPv4, formatIPv6 } from '../ip-address.js';
import * as C from './constants.js';
import { decodeAwsVpceId, decodeAzureLinkId, decodeGcpPscConnectionId, decodeSsl, walkTlvs } from './tlv.js';
import type {
  IProxyHeader,
  IProxyInfo,
  IProxyIpAddress,
  ISslInfo,
  ITlv,
  ProxyAddress,
  ProxyCommand,
  ProxyFamily,
  ProxyTransport,
} from './types.js';

const NO_TLVS: readonly ITlv[] = Object.freeze([]);

/** Where a header's two endpoints live until first asked for; each call decodes afresh. */
export interface IEndpoints {
  source(): ProxyAddress;
  destination(): ProxyAddress;
}

/** INET: both addresses as 32-bit numbers (signed or unsigned: formatIPv4 reads the bits), and the ports. */
export class IPv4Endpoints implements IEndpoints {
  constructor(
    private readonly sourceAddress: number,
    private readonly destinationAddress: number,
    private readonly sourcePort: number,
    private readonly destinationPort: number,
  ) {}

  source(): IProxyIpAddress {
    return { address: formatIPv4(this.sourceAddress), port: this.sourcePort };
  }

  destination(): IProxyIpAddress {
    return { address: formatIPv4(this.destinationAddress), port: this.destinationPort };
  }
}

/** INET6: the 16 source bytes then the 16 destination bytes (owned), and the ports. */
export class IPv6Endpoints implements IEndpoints {
  constructor(
    private readonly addresses: Uint8Array,
    private readonly sourcePort: number,
    private readonly destinationPort: number,
  ) {}

  source(): IProxyIpAddress {
    return { address: formatIPv6(this.addresses, 0), port: this.sourcePort };
  }

  destination(): IProxyIpAddress {
    return { address: formatIPv6(this.addresses, C.IPV6_LENGTH), port: this.destinationPort };
  }
}

/** Endpoints already decoded (UNIX paths, or values given by a caller). */
export class GivenEndpoints implements IEndpoints {
  constructor(
    private readonly src: ProxyAddress,
    private readonly dst: ProxyAddress,
  ) {}

  source(): ProxyAddress {
    return this.src;
  }

  destination(): ProxyAddress {
    return this.dst;
  }
}

/**
 * What a header is made of. Every byte it keeps is its own (copied out of the input), so a
 * header never pins the chunk it was read from and never changes when that chunk is reused.
 */
export interface IProxyHeaderFields {
  version: 1 | 2;
  command: ProxyCommand;
  family: ProxyFamily;
  transport: ProxyTransport;
  /** Bytes the header took on the wire. */
  length: number;
  /** null for LOCAL, UNSPEC and v1 UNKNOWN: use the socket's own endpoints then. */
  endpoints: IEndpoints | null;
  /** The validated TLV area (v2); null when the header has no TLVs. */
  tlvArea: Buffer | null;
}

/**
 * A parsed (or given) header. Address strings and TLVs stay as validated numbers and bytes until
 * first asked for, so the parse itself converts nothing to strings.
 */
export class ProxyHeader implements IProxyHeader {
  public readonly version: 1 | 2;
  public readonly command: ProxyCommand;
  public readonly family: ProxyFamily;
  public readonly transport: ProxyTransport;
  /** Bytes the header took on the wire. */
  public readonly length: number;
  private readonly endpoints: IEndpoints | null;
  private readonly tlvArea: Buffer | null;
  private tlvList: readonly ITlv[] | undefined = undefined;
  private src: ProxyAddress | null | undefined = undefined;
  private dst: ProxyAddress | null | undefined = undefined;

  constructor(fields: IProxyHeaderFields) {
    this.version = fields.version;
    this.command = fields.command;
    this.family = fields.family;
    this.transport = fields.transport;
    this.length = fields.length;
    this.endpoints = fields.endpoints;
    this.tlvArea = fields.tlvArea;
  }

  get source(): ProxyAddress | null {
    if (this.src === undefined) this.src = this.endpoints === null ? null : this.endpoints.source();
    return this.src;
  }

  get destination(): ProxyAddress | null {
    if (this.dst === undefined) this.dst = this.endpoints === null ? null : this.endpoints.destination();
    return this.dst;
  }

  get tlvs(): readonly ITlv[] {
    if (this.tlvList === undefined) this.tlvList = this.tlvArea === null ? NO_TLVS : walkTlvs(this.tlvArea);
    return this.tlvList;
  }

  getTlv(type: number): ITlv | undefined {
    if (this.tlvArea === null) return undefined;
    for (const tlv of this.tlvs) if (tlv.type === type) return tlv;
    return undefined;
  }

  get alpn(): string | undefined {
    return this.getTlv(C.PP2_TYPE_ALPN)?.value.toString('latin1');
  }

  get authority(): string | undefined {
    return this.getTlv(C.PP2_TYPE_AUTHORITY)?.value.toString('utf8');
  }

  get uniqueId(): Buffer | undefined {
    return this.getTlv(C.PP2_TYPE_UNIQUE_ID)?.value;
  }

  get crc32c(): number | undefined {
    return this.getTlv(C.PP2_TYPE_CRC32C)?.value.readUInt32BE(0);
  }

  get ssl(): ISslInfo | undefined {
    const tlv = this.getTlv(C.PP2_TYPE_SSL);
    return tlv && decodeSsl(tlv.value);
  }

  get netns(): string | undefined {
    return this.getTlv(C.PP2_TYPE_NETNS)?.value.toString('utf8');
  }

  get awsVpceId(): string | undefined {
    const tlv = this.getTlv(C.PP2_TYPE_AWS);
    return tlv && decodeAwsVpceId(tlv.value);
  }

  get azureLinkId(): number | undefined {
    const tlv = this.getTlv(C.PP2_TYPE_AZURE);
    return tlv && decodeAzureLinkId(tlv.value);
  }

  get gcpPscConnectionId(): bigint | undefined {
    const tlv = this.getTlv(C.PP2_TYPE_GCP);
    return tlv && decodeGcpPscConnectionId(tlv.value);
  }

  toProxyInfo(): IProxyInfo {
    const src = this.source;
    const dst = this.destination;
    if (this.command === 'PROXY' && src && dst && 'address' in src && 'address' in dst) {
      return {
        protocol: this.family === 'INET' ? 'TCP4' : 'TCP6',
        sourceIP: src.address,
        sourcePort: src.port,
        destinationIP: dst.address,
        destinationPort: dst.port,
      };
    }
    return { protocol: 'UNKNOWN', sourceIP: '', sourcePort: 0, destinationIP: '', destinationPort: 0 };
  }
}
