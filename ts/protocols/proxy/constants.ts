/**
 * PROXY protocol constants and byte layouts, named once.
 * Source: HAProxy's doc/proxy-protocol.txt (v1 section 2.1, v2 section 2.2).
 */

/**
 * "PROXY": the five bytes that identify a v1 header (spec 2.2, "identifying the protocol
 * version"). A stream starting with them is a v1 header, valid or not, never plain data.
 */
export const V1_SIGNATURE = Buffer.from('PROXY', 'latin1');
/** Longest legal v1 line including CRLF (spec 2.1). */
export const V1_MAX_LENGTH = 107;
export const V1_PROTO_TCP4 = 'TCP4';
export const V1_PROTO_TCP6 = 'TCP6';
export const V1_PROTO_UNKNOWN = 'UNKNOWN';
/** The short UNKNOWN form: the only one HAProxy accepts. */
export const V1_UNKNOWN_LINE = Buffer.from('PROXY UNKNOWN\r\n', 'latin1');

/** The 12-byte v2 signature. */
export const V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
export const V2_OFFSET_VERSION_COMMAND = 12;
export const V2_OFFSET_FAMILY = 13;
export const V2_OFFSET_LENGTH = 14;
/** Fixed part: signature, version/command, family/transport, length. */
export const V2_FIXED_LENGTH = 16;
/** 16 fixed bytes + the largest 16-bit length. */
export const V2_MAX_TOTAL_LENGTH = V2_FIXED_LENGTH + 0xffff;
export const V2_VERSION = 0x2;

export const V2_COMMAND_LOCAL = 0x0;
export const V2_COMMAND_PROXY = 0x1;

export const V2_FAMILY_UNSPEC = 0x0;
export const V2_FAMILY_INET = 0x1;
export const V2_FAMILY_INET6 = 0x2;
export const V2_FAMILY_UNIX = 0x3;

export const V2_TRANSPORT_UNSPEC = 0x0;
export const V2_TRANSPORT_STREAM = 0x1;
export const V2_TRANSPORT_DGRAM = 0x2;

/** Address block sizes per family (spec 2.2: "Address block"). */
export const V2_ADDRESS_LENGTH_INET = 12;
export const V2_ADDRESS_LENGTH_INET6 = 36;
export const V2_ADDRESS_LENGTH_UNIX = 216;
export const V2_UNIX_PATH_LENGTH = 108;
export const IPV4_LENGTH = 4;
export const IPV6_LENGTH = 16;
export const PORT_LENGTH = 2;

/** TLV framing: type (1) + length (2, big-endian). */
export const TLV_HEADER_LENGTH = 3;
export const TLV_MAX_VALUE_LENGTH = 0xffff;

export const PP2_TYPE_ALPN = 0x01;
export const PP2_TYPE_AUTHORITY = 0x02;
export const PP2_TYPE_CRC32C = 0x03;
export const PP2_TYPE_NOOP = 0x04;
export const PP2_TYPE_UNIQUE_ID = 0x05;
export const PP2_TYPE_SSL = 0x20;
export const PP2_SUBTYPE_SSL_VERSION = 0x21;
export const PP2_SUBTYPE_SSL_CN = 0x22;
export const PP2_SUBTYPE_SSL_CIPHER = 0x23;
export const PP2_SUBTYPE_SSL_SIG_ALG = 0x24;
export const PP2_SUBTYPE_SSL_KEY_ALG = 0x25;
export const PP2_SUBTYPE_SSL_GROUP = 0x26;
export const PP2_SUBTYPE_SSL_SIG_SCHEME = 0x27;
export const PP2_SUBTYPE_SSL_CLIENT_CERT = 0x28;
export const PP2_TYPE_NETNS = 0x30;
export const PP2_TYPE_MIN_CUSTOM = 0xe0;
export const PP2_TYPE_MAX_CUSTOM = 0xef;
export const PP2_TYPE_MIN_EXPERIMENT = 0xf0;
export const PP2_TYPE_MAX_EXPERIMENT = 0xf7;

/** Vendor TLVs in the custom range. */
export const PP2_TYPE_GCP = 0xe0;
export const PP2_TYPE_AWS = 0xea;
export const PP2_SUBTYPE_AWS_VPCE_ID = 0x01;
export const PP2_TYPE_AZURE = 0xee;
export const PP2_SUBTYPE_AZURE_PRIVATEENDPOINT_LINKID = 0x01;
export const GCP_PSC_CONNECTION_ID_LENGTH = 8;
export const AZURE_LINK_ID_TLV_LENGTH = 5;

export const PP2_CLIENT_SSL = 0x01;
export const PP2_CLIENT_CERT_CONN = 0x02;
export const PP2_CLIENT_CERT_SESS = 0x04;
/** SSL TLV fixed part: client flags (1) + verify (4). */
export const PP2_SSL_FIXED_LENGTH = 5;

export const CRC32C_LENGTH = 4;
/** Spec 2.2.5: UNIQUE_ID is at most 128 bytes. */
export const UNIQUE_ID_MAX_LENGTH = 128;
/** HAProxy refuses longer AUTHORITY values, so we never send one. */
export const AUTHORITY_MAX_LENGTH = 255;

/** Default bound on a v2 header we buffer (a client-certificate TLV alone can be 1–2 KiB). */
export const DEFAULT_MAX_HEADER_SIZE = 4096;
