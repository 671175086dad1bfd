/**
 * Limits (SPEC §2 `limits`), enforced by each sidecar for its own agent instance:
 * - requests per minute: the HTTP local rate limit filter (a CONNECT counts as one request); its
 *   `filter_enabled` and `filter_enforced` default to 0%, so both are set to 100% explicitly
 *   (research/envoy-egress-notes.md §7); an excess request gets 429; in transparent mode a TLS or
 *   IP tunnel counts as one request, from a network token bucket shared by all tunnel chains;
 * - concurrent connections: the network connection limit filter, before the HTTP connection
 *   manager; an excess connection is closed. Its counter belongs to its filter chain: exact for
 *   the explicit proxy's single chain, per chain in transparent mode (README).
 */
import type { AgentIr } from '../../ir/agent-ir';

const ALL = { default_value: { numerator: 100, denominator: 'HUNDRED' }, runtime_key: 'exitgate.rate_limit' };

export function rateLimitHttpFilters(ir: AgentIr): Record<string, unknown>[] {
  const rpm = ir.limits.requestsPerMinute;
  if (rpm === undefined) return [];
  return [
    {
      name: 'envoy.filters.http.local_ratelimit',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
        stat_prefix: 'egress_rate_limit',
        token_bucket: { max_tokens: rpm, tokens_per_fill: rpm, fill_interval: '60s' },
        filter_enabled: ALL,
        filter_enforced: { ...ALL, runtime_key: 'exitgate.rate_limit_enforced' },
      },
    },
  ];
}

/**
 * Transparent mode's TLS and IP tunnels carry no HTTP requests: each connection counts as one
 * request, as a CONNECT does. The network filter sits on every tunnel chain, and `share_key` makes
 * those chains draw from one bucket per agent (otherwise each chain would have its own).
 */
export function tunnelRateLimitNetworkFilters(ir: AgentIr): Record<string, unknown>[] {
  const rpm = ir.limits.requestsPerMinute;
  if (rpm === undefined) return [];
  return [
    {
      name: 'envoy.filters.network.local_ratelimit',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit',
        stat_prefix: 'egress_tunnel_rate_limit',
        token_bucket: { max_tokens: rpm, tokens_per_fill: rpm, fill_interval: '60s' },
        share_key: `exitgate/${ir.tenant}/${ir.agent}/tunnels`,
      },
    },
  ];
}

export function connectionLimitNetworkFilters(ir: AgentIr): Record<string, unknown>[] {
  const max = ir.limits.maxConnections;
  if (max === undefined) return [];
  return [
    {
      name: 'envoy.filters.network.connection_limit',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit',
        stat_prefix: 'egress_connection_limit',
        max_connections: max,
      },
    },
  ];
}
