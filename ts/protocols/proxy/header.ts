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
 * A parsed header. TLVs stay as one validated byte range until first asked for, so a header
 * with TLVs costs the parser about what one without them does.
 */
export class ProxyHeader implements IProxyHeader {
  private tlvList: readonly ITlv[] | undefined;

  constructor(
    public readonly version: 1 | 2,
    public readonly command: ProxyCommand,
    public readonly family: ProxyFamily,
    public readonly transport: ProxyTransport,
    public readonly source: ProxyAddress | null,
    public readonly destination: ProxyAddress | null,
    private readonly tlvArea: Buffer | null = null,
  ) {}

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
