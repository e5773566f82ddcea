/**
 * withProxyProtocol(server): a Node server (net, tls, http, https, http2) reads the PROXY header
 * itself, before TLS and before HTTP, with SmartProxy's policies (require, use, ignore, reject,
 * skip by source and local port) and error codes.
 *
 * Every kind of Node server starts a connection by emitting 'connection' with the raw socket; its
 * own TLS, HTTP or HTTP/2 handling is a listener of that event. The wrapper takes over that one
 * emit (rather than the listeners, so listeners added later also wait): the socket is held until
 * its header is read, then emitted with the bytes after the header put back in front, where
 * TLSSocket, the HTTP parser and the HTTP/2 session each pick them up first.
 *
 * No closure and no timer per connection: socket listeners are module functions finding their
 * state through a symbol; one unref'd sweep per server enforces the header deadlines.
 */
import net from 'node:net';
import { ConfigError, type ProxyProtocolError, type ProxyProtocolErrorCode } from '../protocols/errors.js';
import { ProxyProtocolDecoder, detectSignature } from '../protocols/proxy/parser.js';
import type { IProxyHeader } from '../protocols/proxy/types.js';
import { normalizeIP } from '../core/utils/ip-utils.js';
import { hintPeerName, missingHeaderHint, untrustedHeaderHint } from '../core/utils/proxy-hints.js';
import { BELIEVING_POLICIES, type ProxyPolicy } from '../core/utils/proxy-policy.js';
import { resolveServerOptions, type IResolvedServerOptions, type IWithProxyProtocolOptions } from './options.js';
import { recordHeader, setRealPeer } from './peer.js';

/** Payload of the server's 'proxyProtocolError' event; the connection is already closed. */
export interface IProxyProtocolServerErrorEvent {
  code: ProxyProtocolErrorCode;
  message: string;
  /** The TCP peer (the proxy, or whoever connected), IPv4-mapped addresses unmapped. */
  peerAddress: string;
  peerPort: number;
  /** Whether the peer's policy believes headers (`require`, `use`: `proxyIPs` or such a rule). */
  trusted: boolean;
  /** The policy that applied to the peer on this port. */
  policy: ProxyPolicy;
  /** What to change when the code points at a configuration mismatch. */
  hint?: string;
}

const EMPTY = Buffer.alloc(0);
const kServer = Symbol('smartproxy.withProxyProtocol');
const kWaiting = Symbol('smartproxy.waitingForHeader');
const SWEEP_MIN_MS = 20;
const SWEEP_MAX_MS = 1000;
const SWEEP_DIVISOR = 10;

type Emit = (this: net.Server, event: string | symbol, ...args: unknown[]) => boolean;

interface IServerState {
  options: IResolvedServerOptions;
  /** The server's emit before it was wrapped. */
  emit: Emit;
  waiting: Set<IWaitingSocket>;
  sweepTimer: NodeJS.Timeout | null;
  sweepInterval: number;
  /** http(s).Server's closeAllConnections before it was wrapped; null for other servers. */
  closeAll: (() => void) | null;
}

interface IWrappedServer extends net.Server {
  [kServer]: IServerState;
  /** http(s).Server only. */
  closeAllConnections?: () => void;
}

/** A connection whose PROXY stage is not decided yet. */
interface IWaiting {
  server: IWrappedServer;
  peerAddress: string;
  peerPort: number;
  policy: ProxyPolicy;
  /** require, use, ignore: reads the header. */
  decoder: ProxyProtocolDecoder | null;
  /** reject: its first bytes while they could still be a signature. */
  held: Buffer;
  /** Epoch ms, or 0 for none. */
  deadline: number;
}

interface IWaitingSocket extends net.Socket {
  [kWaiting]?: IWaiting;
}

const DIRECT_REMEDY = 'set required: false (for proxyIPs), or give its address policy "use" in rules, which accepts it without a header.';

const HINTS: Partial<Record<ProxyProtocolErrorCode, string>> = {
  ERR_PP_TIMEOUT: 'the trusted peer did not send a whole header within timeout ms: check that it sends PROXY headers to this port',
  ERR_PP_HEADER_TOO_LARGE: 'raise maxHeaderSize (a client certificate TLV alone can be 1-2 KiB)',
};

// ---- the PROXY stage of one connection --------------------------------------------------------

/** Takes a new connection: hands it on at once (`skip`) or holds it for its PROXY stage. */
function accept(server: IWrappedServer, socket: IWaitingSocket): void {
  const state = server[kServer];
  const peer = socket.remoteAddress;
  if (peer === undefined && socket instanceof net.Socket && typeof server.address() !== 'string') {
    // A TCP peer that has no address any more reset the connection before it was accepted
    // (HAProxy aborting a connection its client dropped): nothing to read, serve or report.
    socket.destroy();
    return;
  }
  const peerAddress = peer === undefined ? '' : normalizeIP(peer);
  // A peer without an IP (a UNIX socket, a stream handed in by hand) is never trusted: `reject`.
  const policy = peer === undefined ? 'reject' : state.options.policies.policyFor(peerAddress, socket.localPort ?? 0);
  if (policy === 'skip') state.emit.call(server, 'connection', socket);
  else startWaiting(server, socket, peerAddress, policy);
}

function startWaiting(server: IWrappedServer, socket: IWaitingSocket, peerAddress: string, policy: ProxyPolicy): void {
  const state = server[kServer];
  const { options } = state;
  socket[kWaiting] = {
    server,
    peerAddress,
    peerPort: socket.remotePort ?? 0,
    policy,
    decoder: policy === 'reject' ? null : new ProxyProtocolDecoder({ maxHeaderSize: options.maxHeaderSize }),
    held: EMPTY,
    deadline: options.timeout > 0 ? Date.now() + options.timeout : 0,
  };
  socket.on('data', onWaitingData);
  socket.on('end', onWaitingEnd);
  socket.on('error', onWaitingError);
  socket.on('close', onWaitingClose);
  state.waiting.add(socket);
  if (state.sweepTimer === null && options.timeout > 0) {
    state.sweepTimer = setInterval(sweep, state.sweepInterval, state);
    state.sweepTimer.unref();
  }
}

/** Ends the PROXY stage: the socket leaves the wait and carries none of this module's listeners. */
function stopWaiting(socket: IWaitingSocket, waiting: IWaiting): void {
  socket[kWaiting] = undefined;
  waiting.server[kServer].waiting.delete(socket);
  socket.off('data', onWaitingData);
  socket.off('end', onWaitingEnd);
  socket.off('error', onWaitingError);
  socket.off('close', onWaitingClose);
}

/**
 * Gives the socket to the server as if it had just connected: not flowing (the server's own code
 * chooses how to read), with the bytes after the header first in its read buffer.
 */
function handOver(socket: IWaitingSocket, waiting: IWaiting, rest: Buffer): void {
  stopWaiting(socket, waiting);
  // The 'data' listener made the socket flow; null is a fresh socket's state (typed readonly, but
  // settable: net.Socket sets it itself for pauseOnConnect).
  (socket as { readableFlowing: boolean | null }).readableFlowing = null;
  if (rest.length > 0) socket.unshift(rest);
  waiting.server[kServer].emit.call(waiting.server, 'connection', socket);
}

function refuse(socket: IWaitingSocket, waiting: IWaiting, code: ProxyProtocolErrorCode, message: string, hint = HINTS[code]): void {
  stopWaiting(socket, waiting);
  socket.destroy();
  const event: IProxyProtocolServerErrorEvent = {
    code,
    message,
    peerAddress: waiting.peerAddress,
    peerPort: waiting.peerPort,
    trusted: BELIEVING_POLICIES.has(waiting.policy),
    policy: waiting.policy,
  };
  if (hint !== undefined) event.hint = hint;
  waiting.server.emit('proxyProtocolError', event);
}

/** A believed header: PROXY with an IP source names the client; LOCAL and UNKNOWN keep the peer. */
function believe(socket: IWaitingSocket, header: IProxyHeader): void {
  recordHeader(socket, header);
  const source = header.source;
  if (header.command === 'PROXY' && source !== null && 'address' in source) {
    setRealPeer(socket, normalizeIP(source.address), source.port);
  }
}

function refuseMissing(socket: IWaitingSocket, waiting: IWaiting, firstBytes: Buffer): void {
  const hint = missingHeaderHint(hintPeerName(waiting.peerAddress, socket.remoteAddress), firstBytes, DIRECT_REMEDY);
  refuse(socket, waiting, 'ERR_PP_MISSING', `peer ${waiting.peerAddress} sent no PROXY header`, hint);
}

/** A whole header, taken as the policy says; false when its version is not accepted. */
function takeHeader(socket: IWaitingSocket, waiting: IWaiting, header: IProxyHeader): boolean {
  if (!waiting.server[kServer].options.versions.has(header.version)) {
    refuse(socket, waiting, 'ERR_PP_VERSION_NOT_ALLOWED', `a v${header.version} PROXY header arrived but versions does not include ${header.version}`);
    return false;
  }
  // `ignore`: the header is removed and the peer stays the client.
  if (waiting.policy !== 'ignore') believe(socket, header);
  return true;
}

/** require, use, ignore: at most one header, within the size bound. */
function headerData(socket: IWaitingSocket, waiting: IWaiting, chunk: Buffer): void {
  const decoder = waiting.decoder as ProxyProtocolDecoder;
  let result;
  try {
    result = decoder.push(chunk);
  } catch (err) {
    const e = err as ProxyProtocolError;
    refuse(socket, waiting, e.code, e.message);
    return;
  }
  if (result.status === 'incomplete') return;
  if (result.status === 'none') {
    if (waiting.policy === 'require') return refuseMissing(socket, waiting, decoder.remaining);
  } else if (!takeHeader(socket, waiting, result.header)) return;
  handOver(socket, waiting, decoder.remaining);
}

/** reject: its bytes are a direct client's unless they open with a PROXY signature (spoofing). */
function signatureData(socket: IWaitingSocket, waiting: IWaiting, chunk: Buffer): void {
  const head = waiting.held.length === 0 ? chunk : Buffer.concat([waiting.held, chunk]);
  const match = detectSignature(head);
  if (match === 'incomplete') {
    waiting.held = head;
    return;
  }
  if (match === 'none') handOver(socket, waiting, head);
  else {
    const hint = untrustedHeaderHint(hintPeerName(waiting.peerAddress, socket.remoteAddress), waiting.policy, 'rules');
    refuse(socket, waiting, 'ERR_PP_UNTRUSTED_PEER', `PROXY ${match} header from untrusted peer ${waiting.peerAddress}`, hint);
  }
}

function onWaitingData(this: IWaitingSocket, chunk: Buffer): void {
  const waiting = this[kWaiting];
  if (waiting === undefined) return;
  if (waiting.decoder !== null) headerData(this, waiting, chunk);
  else signatureData(this, waiting, chunk);
}

/**
 * The peer sent FIN before the stage was decided: decide now rather than at the deadline. Bytes
 * held back cannot be handed on after 'end', so a partial header or signature closes the
 * connection as ERR_PP_INCOMPLETE; a peer that sent nothing and left is simply closed.
 */
function onWaitingEnd(this: IWaitingSocket): void {
  const waiting = this[kWaiting];
  if (waiting === undefined) return;
  const heldBytes = waiting.decoder !== null ? waiting.decoder.bufferedLength : waiting.held.length;
  if (heldBytes > 0) refuse(this, waiting, 'ERR_PP_INCOMPLETE', `connection ended inside a PROXY header (${heldBytes} bytes)`);
  else if (waiting.policy === 'require') refuseMissing(this, waiting, EMPTY);
  else {
    stopWaiting(this, waiting);
    this.destroy();
  }
}

// A reset while waiting: 'close' follows and ends the wait. Without this listener the error would
// be thrown, since no server code has seen the socket yet.
function onWaitingError(this: IWaitingSocket): void {}

function onWaitingClose(this: IWaitingSocket): void {
  const waiting = this[kWaiting];
  if (waiting !== undefined) stopWaiting(this, waiting);
}

/** The header deadline passed: `require` failed; a silent `use`/`ignore` or any `reject` peer is a direct client. */
function deadlinePassed(socket: IWaitingSocket, waiting: IWaiting): void {
  const { options } = waiting.server[kServer];
  // Destroyed since the last sweep ('close' is still to come): nothing to decide.
  if (socket.destroyed) stopWaiting(socket, waiting);
  else if (waiting.decoder === null) handOver(socket, waiting, waiting.held);
  else if (waiting.policy !== 'require' && socket.bytesRead === 0) handOver(socket, waiting, EMPTY);
  else refuse(socket, waiting, 'ERR_PP_TIMEOUT', `no complete PROXY header within ${options.timeout} ms`);
}

function sweep(state: IServerState): void {
  const now = Date.now();
  for (const socket of state.waiting) {
    const waiting = socket[kWaiting] as IWaiting;
    if (waiting.deadline !== 0 && now >= waiting.deadline) deadlinePassed(socket, waiting);
  }
}

// ---- the server ---------------------------------------------------------------------------------

/** Replaces the server's emit: 'connection' waits for the header, every other event passes. */
function interceptEmit(this: IWrappedServer, event: string | symbol, socket?: unknown): boolean {
  const state = this[kServer];
  if (event !== 'connection') return state.emit.apply(this, arguments as unknown as [string | symbol, ...unknown[]]);
  accept(this, socket as IWaitingSocket);
  return true;
}

/**
 * http(s).Server's closeAllConnections, extended to the connections still waiting for their
 * header: the server has not seen them, so without this they would hold close() open until
 * their deadline (or for ever, with timeout 0). 'close' then ends each wait.
 */
function closeAllConnections(this: IWrappedServer): void {
  const state = this[kServer];
  for (const socket of state.waiting) socket.destroy();
  (state.closeAll as () => void).call(this);
}

function stopSweep(this: IWrappedServer): void {
  const state = this[kServer];
  if (state.sweepTimer !== null) clearInterval(state.sweepTimer);
  state.sweepTimer = null;
}

/**
 * Makes `server` read a PROXY header (v1 or v2) at the start of every connection, before TLS and
 * HTTP, as the policy for the peer and local port says. From a peer in `proxyIPs` (or a `require`
 * or `use` rule) the header names the client: `remoteAddress`, `remotePort` and `remoteFamily` of
 * the sockets the application sees report it, and getProxyHeader(socket) returns the header.
 * `ignore` removes a header without believing it; `skip` reads nothing. A header from any other
 * peer (`reject`) is spoofing: the connection is closed and the server emits 'proxyProtocolError'.
 * Returns the same server.
 */
export function withProxyProtocol<T extends net.Server>(server: T, options: IWithProxyProtocolOptions): T {
  if (!(server instanceof net.Server)) throw new ConfigError('ERR_CONFIG_OPTION', 'server', 'must be a net, tls, http, https or http2 server');
  if (kServer in server) throw new ConfigError('ERR_CONFIG_OPTION', 'server', 'already reads PROXY headers: wrap a server once');
  if ((server as { pauseOnConnect?: boolean }).pauseOnConnect === true) {
    throw new ConfigError('ERR_CONFIG_OPTION', 'server', 'pauseOnConnect hands sockets on unread: read the header where the socket is served');
  }
  const resolved = resolveServerOptions(options);
  const wrapped = server as T & IWrappedServer;
  const shortest = resolved.timeout > 0 ? resolved.timeout : SWEEP_MAX_MS * SWEEP_DIVISOR;
  wrapped[kServer] = {
    options: resolved,
    emit: server.emit as Emit,
    waiting: new Set(),
    sweepTimer: null,
    sweepInterval: Math.max(SWEEP_MIN_MS, Math.min(SWEEP_MAX_MS, Math.floor(shortest / SWEEP_DIVISOR))),
    closeAll: wrapped.closeAllConnections ?? null,
  };
  wrapped.emit = interceptEmit as T['emit'];
  if (wrapped[kServer].closeAll !== null) wrapped.closeAllConnections = closeAllConnections;
  wrapped.on('close', stopSweep);
  return server;
}
