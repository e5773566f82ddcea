/**
 * Configuration: checked and compiled once, by part (options, match, target, TLS, security,
 * sending), in ./config/. This entry keeps the import path the rest of the proxy uses.
 */
export { collectConfigErrors, DEFAULTS, resolveConfig, resolveRoutesOrThrow } from './config/options.js';
export type { IBackendTls, IDomainMatcher, IResolvedConfig, IResolvedRoute, ISendSettings } from './config/types.js';
export type { IResolvedHttp } from './config/http.js';
