/**
 * The DNS cache shared by the dynamic forward proxy filter and cluster. Envoy requires the two
 * copies to be identical (dynamic_forward_proxy_filter docs), so both come from this function.
 */
import { DNS_CACHE } from './names';
import { guardedRanges, toCidrRange } from './guard';
import type { TranslateOptions } from './options';

export function dnsCacheConfig(options: TranslateOptions): Record<string, unknown> {
  const config: Record<string, unknown> = {
    name: DNS_CACHE,
    // IPv4 first: most egress destinations are dual-stack, and the guard covers both families.
    dns_lookup_family: 'V4_PREFERRED',
    // Rebinding defence: addresses in these ranges never enter the cache, so they are never dialled.
    resolved_address_filter: { ranges: guardedRanges(options.guardAllow).map(toCidrRange) },
    // Re-resolve often enough that DNS changes (and rebinding attempts) are seen quickly.
    dns_refresh_rate: '5s',
    host_ttl: '300s',
  };
  // Always c-ares with search domains off: with the system's resolv.conf search list (and
  // Kubernetes' ndots:5) an allowed "api.x.com" could be resolved as "api.x.com.<search>" first.
  config.typed_dns_resolver_config = {
    name: 'envoy.network.dns_resolver.cares',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig',
      ...(options.dnsResolver
        ? { resolvers: [{ socket_address: { address: options.dnsResolver.address, port_value: options.dnsResolver.port } }], use_resolvers_as_fallback: false }
        : {}),
      dns_resolver_options: { no_default_search_domain: true },
    },
  };
  return config;
}
