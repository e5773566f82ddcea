/**
 * Hints for PROXY errors on SmartProxy's connections; the text lives in core (shared with
 * withProxyProtocol), this module supplies what a Connection knows and SmartProxy's option names.
 */
import * as text from '../../../core/utils/proxy-hints.js';
import type { Connection } from '../connection-manager.js';

const DIRECT_REMEDY = 'give its address policy "use" in proxyProtocolRules, which accepts it without a header.';

function peerName(conn: Connection): string {
  return text.hintPeerName(conn.peerIP, conn.wrapped.socket.remoteAddress);
}

/** A source whose policy requires a header opened with something else (or nothing at all). */
export function missingHeaderHint(conn: Connection, firstBytes: Buffer): string {
  return text.missingHeaderHint(peerName(conn), firstBytes, DIRECT_REMEDY);
}

/** A source that is not trusted sent a header. */
export function untrustedHeaderHint(conn: Connection): string {
  return text.untrustedHeaderHint(peerName(conn), conn.policy, 'proxyProtocolRules');
}
