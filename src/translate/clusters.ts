/** Clusters: one dynamic forward proxy cluster that dials the name the route allowed. */
import { DFP_CLUSTER } from './names';
import { dnsCacheConfig } from './dns-cache';
import type { TranslateOptions } from './options';

export function dfpCluster(options: TranslateOptions): Record<string, unknown> {
  return {
    name: DFP_CLUSTER,
    connect_timeout: '5s',
    // The DFP cluster picks the host from the DNS cache (CLUSTER_PROVIDED is required).
    lb_policy: 'CLUSTER_PROVIDED',
    cluster_type: {
      name: 'envoy.clusters.dynamic_forward_proxy',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.clusters.dynamic_forward_proxy.v3.ClusterConfig',
        dns_cache_config: dnsCacheConfig(options),
      },
    },
  };
}
