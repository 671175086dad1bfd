/**
 * Where a sidecar fetches dependent resources (RDS now, SDS later): over its ADS stream, or, for the
 * per-type protocol variants, from the per-type service on the same control plane.
 * (https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/core/v3/config_source.proto)
 */
import { XDS_CLUSTER } from './names';
import type { NodeFacts } from './options';

export function configSource(node: NodeFacts): Record<string, unknown> {
  const protocol = node.xdsProtocol ?? 'delta';
  if (protocol === 'sotw' || protocol === 'delta') return { ads: {}, resource_api_version: 'V3' };
  return {
    api_config_source: {
      api_type: protocol === 'delta-per-type' ? 'DELTA_GRPC' : 'GRPC',
      transport_api_version: 'V3',
      set_node_on_first_message_only: true,
      grpc_services: [{ envoy_grpc: { cluster_name: XDS_CLUSTER } }],
    },
    resource_api_version: 'V3',
  };
}
