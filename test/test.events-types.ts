/**
 * Typed events: every event name and payload is checked by tsc against ISmartProxyEventMap (the
 * `@ts-expect-error` lines below are verified by `npm run typecheck`: a line that compiled would
 * fail it), and at run time the events of one connection arrive in the documented order, with
 * `connection-admitted` carrying the real client from the PROXY header.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProxyProtocolParser, SmartProxy } from '../ts/index.js';
import type { IClosedConnectionRecord, IConnectionRejectedEvent, ISmartProxyEventMap } from '../ts/index.js';
import { cleanupAfterAll } from './helpers/cleanup.js';
import { closed, connect, readLine, waitFor } from './helpers/net.js';
import { startProxyToEcho } from './helpers/proxy.js';

const onCleanup = cleanupAfterAll();

/** Compiled, never run: what tsc accepts and refuses on a SmartProxy's events. */
export function typeChecks(proxy: SmartProxy): void {
  proxy.on('connection-close', (record) => record.closeReason.startsWith('ERR_'));
  proxy.on('connection-admitted', (record) => record.clientIP.length);
  proxy.on('connection-rejected', (event: IConnectionRejectedEvent) => event.connection.id);
  proxy.on('proxy-protocol-error', (event) => event.hint?.length);
  proxy.on('listening', (port) => port.toFixed());
  proxy.on('warning', (message) => message.trim());
  // @ts-expect-error a misspelt event name does not compile
  proxy.on('connection-closed', () => undefined);
  // @ts-expect-error a payload field that does not exist does not compile
  proxy.on('connection-close', (record) => record.bytesFromClients);
  // @ts-expect-error a payload of the wrong type does not compile
  proxy.on('listening', (port: string) => port);
  // @ts-expect-error emitting an event that does not exist does not compile
  proxy.emit('conection-open', {});
  // @ts-expect-error emitting with the wrong payload does not compile
  proxy.connectionManager.events.emit('warning', 42);
}

type EventName = keyof ISmartProxyEventMap;

describe('SmartProxy events', () => {
  it('arrive in the documented order, and connection-admitted carries the real client from the PROXY header', async () => {
    const { proxy, port } = await startProxyToEcho(onCleanup, 'r');
    const seen: Array<[EventName, string]> = [];
    proxy.on('connection-open', (r) => seen.push(['connection-open', r.clientIP]));
    proxy.on('connection-admitted', (r) => seen.push(['connection-admitted', r.clientIP]));
    proxy.on('connection-close', (r: IClosedConnectionRecord) => seen.push(['connection-close', r.closeReason]));

    const socket = await connect({ port });
    const header = ProxyProtocolParser.generate({ source: { address: '203.0.113.9', port: 4000 }, destination: { address: '127.0.0.1', port } }, { version: 2 });
    socket.write(Buffer.concat([header, Buffer.from('hi\n')]));
    assert.equal(await readLine(socket), 'hi');
    socket.end();
    await closed(socket);
    await waitFor(() => seen.length === 3);
    assert.deepEqual(seen, [
      ['connection-open', '127.0.0.1'],
      ['connection-admitted', '203.0.113.9'],
      ['connection-close', 'client-closed'],
    ]);
  });

  it('leave out connection-admitted when the PROXY header is refused', async () => {
    const { proxy, port } = await startProxyToEcho(onCleanup, 'r');
    const seen: EventName[] = [];
    for (const name of ['connection-open', 'connection-admitted', 'proxy-protocol-error', 'connection-rejected', 'connection-close'] as const) proxy.on(name, () => seen.push(name));
    const socket = await connect({ port });
    socket.write('GET / HTTP/1.1\r\n\r\n');
    await closed(socket);
    await waitFor(() => seen.includes('connection-close'));
    assert.deepEqual(seen, ['connection-open', 'proxy-protocol-error', 'connection-close']);
  });
});
