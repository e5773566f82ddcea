/**
 * Policy `reject` (untrusted peers on a PROXY-accepting listener): its bytes are a normal client's unless they open
 * with a PROXY signature, which is a spoofing attempt. Waits only as long as the first bytes could
 * still become a signature (bounded by proxyProtocolTimeout).
 */
import { detectSignature } from '../../../protocols/proxy/parser.js';
import type { IStage } from '../connection-manager.js';
import { EMPTY, type ITaggedSocket, kConn, proxyError } from './common.js';
import { untrustedHeaderHint } from './hints.js';

function onSignatureData(this: ITaggedSocket, chunk: Buffer): void {
  const conn = this[kConn];
  const head = conn.pending === null || conn.pending.length === 0 ? chunk : Buffer.concat([conn.pending, chunk]);
  const match = detectSignature(head);
  if (match === 'incomplete') {
    conn.pending = head;
    return;
  }
  this.off('data', onSignatureData);
  conn.pending = null;
  if (match === 'none') conn.manager.advance(conn, 'admission', head);
  else proxyError(conn, 'ERR_PP_UNTRUSTED_PEER', `PROXY ${match} header from untrusted peer ${conn.peerIP}`, untrustedHeaderHint(conn));
}

/** What arrived so far is not a whole signature: it is the client's data. */
function goOn(conn: Parameters<IStage['enter']>[0]): void {
  conn.wrapped.socket.off('data', onSignatureData);
  const held = conn.pending ?? EMPTY;
  conn.pending = null;
  conn.manager.advance(conn, 'admission', held);
}

export const spoofCheckStage: IStage = {
  enter(conn) {
    conn.pending = EMPTY;
    conn.wrapped.socket.on('data', onSignatureData);
    conn.manager.setDeadline(conn, conn.manager.config.proxyProtocolTimeout);
  },
  deadline: goOn,
  clientEnded: goOn,
};
