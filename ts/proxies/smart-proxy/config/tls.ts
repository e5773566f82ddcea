/** `action.tls`: the mode, the route's certificate, client certificates and TLS to the target. */
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import type { TClientCertificate, TTlsMode } from '../models/route-types.js';
import { describe, type Scope } from './check.js';
import type { IBackendTls } from './types.js';

export const TLS_KEYS = ['mode', 'certificate', 'alpnProtocols', 'clientCertificate', 'clientCa', 'backend'] as const;
const CERTIFICATE_KEYS = ['key', 'cert'] as const;
const BACKEND_KEYS = ['rejectUnauthorized', 'ca', 'servername', 'alpnProtocols'] as const;
const TLS_MODES: readonly TTlsMode[] = ['passthrough', 'terminate', 'terminate-and-reencrypt'];
const CLIENT_CERTIFICATE: readonly TClientCertificate[] = ['request', 'require'];
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
/** An ALPN protocol name is 1..255 bytes (RFC 7301). */
const ALPN_MAX_BYTES = 255;

export interface IResolvedTls {
  tlsMode: TTlsMode | 'none';
  secureContext: tls.SecureContext | null;
  alpnProtocols: string[] | undefined;
  clientCertificate: TClientCertificate | null;
  backendTls: IBackendTls;
}

/** Why `pem` holds no usable certificate, or null. */
function bundleProblem(pem: string): string | null {
  const blocks = pem.match(PEM_CERTIFICATE);
  if (blocks === null) return 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)';
  for (let i = 0; i < blocks.length; i++) {
    try {
      new X509Certificate(blocks[i]);
    } catch (err) {
      return `certificate ${i + 1} cannot be read: ${(err as Error).message}`;
    }
  }
  return null;
}

/** Why a certificate chain is not valid at `now` (expired or not yet valid), or null. */
function validityProblem(chain: string, now: number): string | null {
  for (const [i, block] of (chain.match(PEM_CERTIFICATE) ?? []).entries()) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block);
    } catch (err) {
      return `chain certificate ${i + 1} cannot be read: ${(err as Error).message}`;
    }
    const which = `${i === 0 ? 'the certificate' : `chain certificate ${i + 1}`} (${cert.subject.replace(/\n/g, ', ')})`;
    const notAfter = new Date(cert.validTo);
    const notBefore = new Date(cert.validFrom);
    if (notAfter.getTime() < now) return `${which} expired on ${notAfter.toISOString()}: every verifying client would refuse it`;
    if (notBefore.getTime() > now) return `${which} is not valid before ${notBefore.toISOString()}: every verifying client would refuse it`;
  }
  return null;
}

/**
 * What one resolution builds and checks, by the PEM it comes from: 1,000 routes sharing one
 * certificate (or one CA bundle) build one context and parse the PEM once. Each context costs
 * milliseconds of CPU on the event loop; a failure is remembered as its message. Keys are the PEM
 * strings themselves in nested maps: a string hashes once, a concatenation of them would be copied
 * and hashed again for every route.
 */
export class SecureContextCache {
  private readonly root = new Map<string, unknown>();
  private readonly now = Date.now();

  private once<T extends tls.SecureContext | string | null>(path: readonly string[], make: () => T): T {
    let node = this.root;
    for (const part of path.slice(0, -1)) {
      let next = node.get(part) as Map<string, unknown> | undefined;
      if (next === undefined) node.set(part, (next = new Map()));
      node = next;
    }
    const last = path[path.length - 1];
    if (!node.has(last)) node.set(last, make());
    return node.get(last) as T;
  }

  private static create(options: tls.SecureContextOptions): tls.SecureContext | string {
    try {
      return tls.createSecureContext(options);
    } catch (err) {
      return (err as Error).message;
    }
  }

  bundleProblem(pem: string): string | null {
    return this.once(['bundle', pem], () => bundleProblem(pem));
  }

  validityProblem(chain: string): string | null {
    return this.once(['validity', chain], () => validityProblem(chain, this.now));
  }

  /** A server context: the route's key and certificate, and the CA that client certificates are checked against. */
  server(key: string, cert: string, clientCa: string | undefined): tls.SecureContext | string {
    return this.once(['server', key, cert, clientCa ?? ''], () => SecureContextCache.create({ key, cert, ca: clientCa }));
  }

  /** A client context for connections to targets: `ca` replaces the default roots when given. */
  backend(ca: string | undefined): tls.SecureContext | string {
    return this.once(['backend', ca ?? ''], () => SecureContextCache.create({ ca }));
  }
}

function alpnProblem(name: unknown): string | null {
  if (typeof name !== 'string' || name.length === 0 || Buffer.byteLength(name) > ALPN_MAX_BYTES) return `${describe(name)} is not a protocol name of 1..255 bytes`;
  return null;
}

function alpnList(value: unknown, field: string, scope: Scope): string[] | undefined {
  return scope.list<string>(value, field, { what: 'ALPN protocol names', item: alpnProblem, code: 'ERR_CONFIG_TLS' });
}

/** A CA bundle field: a string holding at least one readable certificate. */
function caBundle(value: unknown, field: string, scope: Scope, cache: SecureContextCache): string | undefined {
  const pem = scope.text(value, field, 'ERR_CONFIG_TLS');
  const problem = pem === undefined ? null : cache.bundleProblem(pem);
  if (problem !== null) scope.add('ERR_CONFIG_TLS', field, problem);
  return problem === null ? pem : undefined;
}

/** `tls.backend`: verification, SNI, ALPN, and the client context built from `ca`. */
function resolveBackend(value: unknown, field: string, scope: Scope, cache: SecureContextCache): IBackendTls {
  const raw = scope.object(value, field, BACKEND_KEYS, 'ERR_CONFIG_TLS') ?? {};
  const ca = caBundle(raw.ca, `${field}.ca`, scope, cache);
  let secureContext = cache.backend(ca);
  if (typeof secureContext === 'string') {
    scope.add('ERR_CONFIG_TLS', `${field}.ca`, `unusable CA bundle: ${secureContext}`);
    secureContext = cache.backend(undefined) as tls.SecureContext;
  }
  return {
    rejectUnauthorized: scope.flag(raw.rejectUnauthorized, `${field}.rejectUnauthorized`, true),
    ca,
    servername: scope.text(raw.servername, `${field}.servername`, 'ERR_CONFIG_TLS'),
    alpnProtocols: alpnList(raw.alpnProtocols, `${field}.alpnProtocols`, scope),
    secureContext,
  };
}

/** Whether and how clients are asked for a certificate, and the CA to check it against. */
function resolveClientAuth(raw: Record<string, unknown>, mode: TTlsMode, field: string, scope: Scope, cache: SecureContextCache) {
  const clientCertificate = scope.oneOf(raw.clientCertificate, `${field}.clientCertificate`, CLIENT_CERTIFICATE, 'ERR_CONFIG_TLS') ?? null;
  const clientCa = caBundle(raw.clientCa, `${field}.clientCa`, scope, cache);
  if (clientCertificate !== null && mode === 'passthrough') {
    scope.add('ERR_CONFIG_TLS', `${field}.clientCertificate`, 'needs TLS to end here (mode terminate or terminate-and-reencrypt); passthrough never sees the handshake');
  } else if (clientCertificate === 'require' && raw.clientCa === undefined) {
    scope.add('ERR_CONFIG_TLS', `${field}.clientCa`, "clientCertificate: 'require' needs clientCa, the PEM CA bundle client certificates are verified against");
  } else if (clientCertificate === null && raw.clientCa !== undefined && raw.clientCertificate === undefined) {
    scope.add('ERR_CONFIG_TLS', `${field}.clientCa`, "asks no client for a certificate without clientCertificate: 'require' or 'request'");
  }
  return { clientCertificate, clientCa };
}

/** `certificate: { key, cert }`, type-checked; null when absent or wrong (reported). */
function readCertificate(value: unknown, field: string, scope: Scope): { key: string; chain: string } | null {
  const cert = scope.object(value, field, CERTIFICATE_KEYS, 'ERR_CONFIG_TLS');
  if (cert === undefined) return null;
  if (cert.key === undefined || cert.cert === undefined) {
    scope.add('ERR_CONFIG_TLS', field, 'needs both key and cert (PEM)');
    return null;
  }
  const key = scope.text(cert.key, `${field}.key`, 'ERR_CONFIG_TLS');
  const chain = scope.text(cert.cert, `${field}.cert`, 'ERR_CONFIG_TLS');
  return key === undefined || chain === undefined ? null : { key, chain };
}

/** The server context of a terminating route, from `certificate: { key, cert }` and the client CA. */
function serverContext(value: unknown, clientCa: string | undefined, field: string, scope: Scope, cache: SecureContextCache): tls.SecureContext | null {
  if (value === undefined) {
    scope.add('ERR_CONFIG_TLS', field, 'needs certificate: { key, cert } (PEM) to terminate TLS');
    return null;
  }
  const pem = readCertificate(value, field, scope);
  if (pem === null) return null;
  const context = cache.server(pem.key, pem.chain, clientCa);
  const problem = typeof context === 'string' ? `unusable key or certificate: ${context}` : cache.validityProblem(pem.chain);
  if (problem !== null) scope.add('ERR_CONFIG_TLS', field, problem);
  return problem === null ? (context as tls.SecureContext) : null;
}

/** `action.tls` (optional): absent means plain TCP, forwarded as bytes. */
export function resolveTls(value: unknown, field: string, scope: Scope, cache: SecureContextCache): IResolvedTls {
  const raw = scope.object(value, field, TLS_KEYS, 'ERR_CONFIG_TLS');
  const mode = raw === undefined ? undefined : scope.oneOf(raw.mode, `${field}.mode`, TLS_MODES, 'ERR_CONFIG_TLS');
  if (raw !== undefined && raw.mode === undefined) scope.add('ERR_CONFIG_TLS', `${field}.mode`, `needs a mode: ${TLS_MODES.join(', ')}`);
  const resolved: IResolvedTls = {
    tlsMode: mode ?? 'none',
    secureContext: null,
    alpnProtocols: raw === undefined ? undefined : alpnList(raw.alpnProtocols, `${field}.alpnProtocols`, scope),
    clientCertificate: null,
    backendTls: resolveBackend(raw?.backend, `${field}.backend`, scope, cache),
  };
  if (raw === undefined || mode === undefined) return resolved;
  const { clientCertificate, clientCa } = resolveClientAuth(raw, mode, field, scope, cache);
  resolved.clientCertificate = clientCertificate;
  if (mode !== 'passthrough') resolved.secureContext = serverContext(raw.certificate, clientCa, `${field}.certificate`, scope, cache);
  // Passthrough never uses a certificate; one given is still checked, so a typo there is not silent.
  else if (raw.certificate !== undefined) readCertificate(raw.certificate, `${field}.certificate`, scope);
  return resolved;
}
