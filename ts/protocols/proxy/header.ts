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

/** Where a header's addresses live until first asked for. */
export enum AddressLayout {
  /** Given as values (generated headers, LOCAL, UNSPEC, UNKNOWN, UNIX). */
  Values = 0,
  /** v1 text: [start, end) offsets of the two address fields in `raw`. */
  V1Text = 1,
  /** v2 INET: 4+4 address bytes and 2+2 port bytes at offset 16 of `raw`. */
  V2Inet = 2,
  /** v2 INET6: 16+16 address bytes and 2+2 port bytes at offset 16 of `raw`. */
  V2Inet6 = 3,
}

const V2_ADDRESSES = C.V2_FIXED_LENGTH;

/**
 * A parsed header. Address strings and TLVs stay as validated byte ranges of the input until
 * first asked for, so the parse itself converts nothing to strings. The header keeps a view of
 * the input buffer: do not reuse that buffer while the header is in use.
 */
export class ProxyHeader implements IProxyHeader {
  private tlvList: readonly ITlv[] | undefined;
  private src: ProxyAddress | null | undefined;
  private dst: ProxyAddress | null | undefined;

  constructor(
    public readonly version: 1 | 2,
    public readonly command: ProxyCommand,
    public readonly family: ProxyFamily,
    public readonly transport: ProxyTransport,
    /** Bytes the header took on the wire. */
    public readonly length: number,
    private readonly tlvArea: Buffer | null,
    private readonly layout: AddressLayout,
    private readonly raw: Buffer | null,
    source: ProxyAddress | null,
    destination: ProxyAddress | null,
    /** v1 only: the four address-field offsets, 7 bits each (a v1 line is ≤ 107 bytes). */
    private readonly textSpans = 0,
    /** v1 only: source port × 65536 + destination port. */
    private readonly ports = 0,
  ) {
    if (layout === AddressLayout.Values) {
      this.src = source;
      this.dst = destination;
    }
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
    const raw = this.raw as Buffer;
    const a = V2_ADDRESSES;
    switch (this.layout) {
      case AddressLayout.V1Text: {
        const spans = this.textSpans;
        this.src = { address: raw.toString('latin1', spans & 0x7f, (spans >> 7) & 0x7f), port: Math.floor(this.ports / 0x10000) };
        this.dst = { address: raw.toString('latin1', (spans >> 14) & 0x7f, (spans >> 21) & 0x7f), port: this.ports % 0x10000 };
        break;
      }
      case AddressLayout.V2Inet:
        this.src = { address: formatIPv4(raw, a), port: (raw[a + 8] << 8) | raw[a + 9] };
        this.dst = { address: formatIPv4(raw, a + 4), port: (raw[a + 10] << 8) | raw[a + 11] };
        break;
      case AddressLayout.V2Inet6:
        this.src = { address: formatIPv6(raw, a), port: (raw[a + 32] << 8) | raw[a + 33] };
        this.dst = { address: formatIPv6(raw, a + 16), port: (raw[a + 34] << 8) | raw[a + 35] };
        break;
      default:
        this.src = null;
        this.dst = null;
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
