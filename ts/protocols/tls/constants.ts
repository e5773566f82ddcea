/** TLS record and handshake layout (RFC 8446 §5.1, §4.1.2; SNI RFC 6066 §3; ALPN RFC 7301). */
export const RECORD_HEADER_LENGTH = 5;
export const RECORD_TYPE_HANDSHAKE = 0x16;
export const RECORD_VERSION_MAJOR = 0x03;
export const MAX_RECORD_LENGTH = 16384;
export const HANDSHAKE_HEADER_LENGTH = 4;
export const HANDSHAKE_TYPE_CLIENT_HELLO = 0x01;
export const RANDOM_LENGTH = 32;
export const PROTOCOL_VERSION_LENGTH = 2;
export const EXTENSION_SERVER_NAME = 0x0000;
export const EXTENSION_ALPN = 0x0010;
export const SERVER_NAME_TYPE_HOST = 0x00;
/** Largest ClientHello we buffer: post-quantum key shares make 2–3 KiB common; 64 KiB is generous. */
export const DEFAULT_MAX_CLIENT_HELLO = 65536;
