/**
 * The explicit-proxy listener: HTTP/1.1 CONNECT (TLS tunnels) and absolute-URI plain HTTP.
 * The route (chosen from the host before any filter resolves it) decides; the dynamic forward
 * proxy filter resolves only names a route allowed, since it skips routes with a direct response.
 */
import { egressListenerName, egressRouteConfigName } from './names';
import { dnsCacheConfig } from './dns-cache';
import { configSource } from './config-source';
import { connectionLimitNetworkFilters, rateLimitHttpFilters } from './filters/limits';
import { hcmAccessLog, hcmAccessLogOptions, listenerAccessLog } from './filters/access-log';
import type { NodeFacts, TranslateOptions } from './options';
import type { AgentIr } from '../ir/agent-ir';

/**
 * The HTTP connection manager of the egress listener: routes from RDS (the agent's route
 * configuration), so a policy change reaches new requests without a listener drain. Shared by the
 * explicit proxy and the plain-HTTP filter chains of transparent mode (transparent.ts).
 */
export function egressHcm(ir: AgentIr, node: NodeFacts, options: TranslateOptions): Record<string, unknown> {
  return {
    '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
    stat_prefix: 'egress',
    // A client that never finishes its request headers cannot hold a connection forever. (Not a
    // whole-request timeout: a CONNECT tunnel is one long request.)
    request_headers_timeout: '10s',
    // HTTP/1.1 only: what explicit-proxy clients speak; no h2c or extended-CONNECT surface.
    codec_type: 'HTTP1',
    rds: { config_source: configSource(node), route_config_name: egressRouteConfigName(ir.tenant, ir.agent) },
    upgrade_configs: [{ upgrade_type: 'CONNECT' }],
    http_protocol_options: { allow_absolute_url: true },
    // Normalise before matching: "Allowed.Test." is "allowed.test" (SPEC §2), paths are canonical.
    strip_trailing_host_dot: true,
    normalize_path: true,
    merge_slashes: true,
    path_with_escaped_slashes_action: 'REJECT_REQUEST',
    // Every request and tunnel becomes a decision event on the control plane (SPEC §5).
    access_log: hcmAccessLog(),
    access_log_options: hcmAccessLogOptions(),
    http_filters: [
      // Limits first: an agent over its rate is refused before any lookup.
      ...rateLimitHttpFilters(ir),
      {
        name: 'envoy.filters.http.dynamic_forward_proxy',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.filters.http.dynamic_forward_proxy.v3.FilterConfig',
          dns_cache_config: dnsCacheConfig(options),
        },
      },
      {
        name: 'envoy.filters.http.router',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
          suppress_envoy_headers: true,
          // CVE-2025-64763: bytes sent before the CONNECT is answered must not reach upstream.
          reject_connect_request_early_data: true,
        },
      },
    ],
  };
}

/** Filter chain metadata carrying the drain epoch: a new epoch is a different filter chain. */
export function drainEpochMetadata(node: NodeFacts): Record<string, unknown> {
  return node.drainEpoch ? { metadata: { filter_metadata: { exitgate: { drain_epoch: node.drainEpoch } } } } : {};
}

export function egressListener(ir: AgentIr, node: NodeFacts, options: TranslateOptions): Record<string, unknown> {
  const hcm = egressHcm(ir, node, options);
  return {
    name: egressListenerName(ir.tenant, ir.agent),
    address: { socket_address: { address: node.listen.address, port_value: node.listen.port } },
    access_log: listenerAccessLog(),
    filter_chains: [
      {
        filters: [...connectionLimitNetworkFilters(ir), { name: 'envoy.filters.network.http_connection_manager', typed_config: hcm }],
        // A new epoch is a different filter chain: Envoy drains the old one's connections.
        ...drainEpochMetadata(node),
      },
    ],
  };
}
