// Public API. Names here are a contract with users moving from SmartProxy 19/21.
export { SmartProxy } from './proxies/smart-proxy/smart-proxy.js';
export { RouteConnectionHandler } from './proxies/smart-proxy/route-connection-handler.js';
// ConnectionManager and RouteManager are internal (reachable as proxy.connectionManager for
// diagnostics, not exported): they change as stages are added.
export type { CloseReason, NormalEnding, StageName } from './proxies/smart-proxy/connection-manager.js';
export { collectConfigErrors, DEFAULTS } from './proxies/smart-proxy/config.js';
export type * from './proxies/smart-proxy/models/interfaces.js';
export type * from './proxies/smart-proxy/models/route-types.js';
export type { IMetricsBytes, IMetricsOptions, IMetricsThroughput, ISmartProxyMetrics } from './proxies/smart-proxy/metrics.js';
export { formatPrometheusMetrics, PROMETHEUS_CONTENT_TYPE } from './proxies/smart-proxy/prometheus.js';
export { sumMetrics } from './proxies/smart-proxy/metrics-sum.js';
export { WrappedSocket } from './core/models/wrapped-socket.js';
export { isWrappedSocket, getUnderlyingSocket } from './core/models/socket-types.js';
export { IpList, normalizeIP } from './core/utils/ip-utils.js';
export { SmartProxyError, ConfigError, ProxyProtocolError, TlsParseError } from './protocols/errors.js';
export type * from './protocols/errors.js';
export type { ProxyPolicy } from './core/utils/proxy-policy.js';
export * from './protocols/proxy/index.js';
export { ClientHelloReader, readClientHello } from './protocols/tls/client-hello.js';
export type { ClientHelloResult } from './protocols/tls/client-hello.js';
export * from './servers/index.js';
export { appendToList, forwardedElement, forwardedNode, forwardedValue, isForwardingHeader } from './protocols/http/forwarded.js';
export type { IForwardedElement } from './protocols/http/forwarded.js';
