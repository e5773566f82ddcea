import { formatIPv4, formatIPv6 } from '../ip-address.js';
import * as C from './constants.js';
import { decodeAwsVpceId, decodeAzureLinkId, decodeGcpPscConnectionId, decodeSsl, walkTlvs } from './tlv.js';
import type {
  IProxyHeader,
  IProxyInfo,
  ISslInfo,
  ITlv,
  ProxyAddress,
  ProxyCommand,
  ProxyFamily,
  ProxyTransport,
} from './types.js';

const NO_TLVS: readonly ITlv[] = Object.freeze([]);

/**
 * What a header is made of. Every byte range is owned by the header (copied out of the input),
 * so a header never pins the chunk it was read from and never changes when that chunk is reused.
 */
export interface IProxyHeaderFields {
  version: 1 | 2;
  command: ProxyCommand;
  family: ProxyFamily;
  transport: ProxyTransport;
  /** Bytes the header took on the wire. */
  length: number;
  /**
   * PROXY over INET or INET6: the address block in v2 layout (source address, destination
   * address, source port, destination port; 12 or 36 bytes), decoded to text on first use.
   */
  ipBlock?: Uint8Array;
  /** Endpoints given as values (UNIX paths). Absent with an ipBlock, and for LOCAL/UNSPEC/UNKNOWN. */
  source?: ProxyAddress;
  destination?: ProxyAddress;
  /** The validated TLV area (v2), when the header has TLVs. */
  tlvArea?: Buffer;
}

const IPV4_BLOCK_PORTS = 2 * C.IPV4_LENGTH;
const IPV6_BLOCK_PORTS = 2 * C.IPV6_LENGTH;

function readPort(block: Uint8Array, offset: number): number {
  return (block[offset] << 8) | block[offset + 1];
}

/**
 * A parsed (or given) header. Address strings and TLVs stay as validated bytes until first asked
 * for, so the parse itself converts nothing to strings.
 */
export class ProxyHeader implements IProxyHeader {
  public readonly version: 1 | 2;
  public readonly command: ProxyCommand;
  public readonly family: ProxyFamily;
  public readonly transport: ProxyTransport;
  /** Bytes the header took on the wire. */
  public readonly length: number;
  private readonly ipBlock: Uint8Array | null;
  private readonly tlvArea: Buffer | null;
  private tlvList: readonly ITlv[] | undefined = undefined;
  private src: ProxyAddress | null | undefined;
  private dst: ProxyAddress | null | undefined;

  constructor(fields: IProxyHeaderFields) {
    this.version = fields.version;
    this.command = fields.command;
    this.family = fields.family;
    this.transport = fields.transport;
    this.length = fields.length;
    this.ipBlock = fields.ipBlock ?? null;
    this.tlvArea = fields.tlvArea ?? null;
    this.src = this.ipBlock === null ? (fields.source ?? null) : undefined;
    this.dst = this.ipBlock === null ? (fields.destination ?? null) : undefined;
  }

  get source(): ProxyAddress | null {
    if (this.src === undefined) this.decodeAddresses();
    return this.src as ProxyAddress | null;
  }

  get destination(): ProxyAddress | null {
    if (this.dst === undefined) this.decodeAddresses();
    return this.dst as ProxyAddress | null;
  }

  private decodeAddresses(): void {
    const block = this.ipBlock as Uint8Array;
    if (this.family === 'INET') {
      this.src = { address: formatIPv4(block, 0), port: readPort(block, IPV4_BLOCK_PORTS) };
      this.dst = { address: formatIPv4(block, C.IPV4_LENGTH), port: readPort(block, IPV4_BLOCK_PORTS + C.PORT_LENGTH) };
    } else {
      this.src = { address: formatIPv6(block, 0), port: readPort(block, IPV6_BLOCK_PORTS) };
      this.dst = { address: formatIPv6(block, C.IPV6_LENGTH), port: readPort(block, IPV6_BLOCK_PORTS + C.PORT_LENGTH) };
    }
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
