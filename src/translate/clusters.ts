/**
 * Clusters: dynamic forward proxy clusters that dial the name a route allowed. One plain, one that
 * originates TLS (verifying the destination's certificate for the name it dials), and one per
 * credential in use, which also injects that credential as an upstream HTTP filter (the injector
 * has no per-route configuration, so the credential is bound to the cluster: research notes §5).
 */
import { DFP_CLUSTER, DFP_TLS_CLUSTER, IP_CLUSTER, IP_TUNNEL_CLUSTER, credentialClusterName, credentialSecretName } from './names';
import { dnsCacheConfig } from './dns-cache';
import { configSource } from './config-source';
import type { CredentialValue, NodeFacts, TranslateOptions } from './options';

function dfpClusterBase(name: string, options: TranslateOptions): Record<string, unknown> {
  return {
    name,
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

export function dfpCluster(options: TranslateOptions): Record<string, unknown> {
  return dfpClusterBase(DFP_CLUSTER, options);
}

/** TLS to the destination: verified against --upstream-ca or the system trust store. */
function originateTls(options: TranslateOptions): Record<string, unknown> {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      common_tls_context: {
        validation_context: options.upstreamCaPem ? { trusted_ca: { inline_string: options.upstreamCaPem } } : { system_root_certs: {} },
      },
    },
  };
}

function httpOptions(filters: Record<string, unknown>[]): Record<string, unknown> {
  return {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
      '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
      // SNI and certificate verification use the name the route allowed, per request.
      upstream_http_protocol_options: { auto_sni: true, auto_san_validation: true },
      explicit_http_config: { http_protocol_options: {} },
      ...(filters.length ? { http_filters: filters } : {}),
    },
  };
}

export function dfpTlsCluster(options: TranslateOptions): Record<string, unknown> {
  return { ...dfpClusterBase(DFP_TLS_CLUSTER, options), transport_socket: originateTls(options), typed_extension_protocol_options: httpOptions([]) };
}

/**
 * A credential's cluster. Over TLS that Envoy originates (`tls: originate`), or, where the policy
 * says the destination speaks plain HTTP (SPEC §2 allows credentials on such rules), over plain
 * HTTP: then the secret crosses the network in clear text, as the policy's author chose.
 */
export function credentialCluster(tenant: string, name: string, credential: CredentialValue, options: TranslateOptions, node: NodeFacts, upstream: 'tls' | 'plain' = 'tls'): Record<string, unknown> {
  const injector = {
    name: 'envoy.filters.http.credential_injector',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.credential_injector.v3.CredentialInjector',
      // overwrite defaults to false: an agent-supplied header would survive (research notes §5).
      overwrite: true,
      allow_request_without_credential: false,
      credential: {
        name: 'envoy.http.injected_credentials.generic',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.http.injected_credentials.generic.v3.Generic',
          credential: { name: credentialSecretName(tenant, name), sds_config: configSource(node) },
          header: credential.header,
          ...(credential.prefix ? { header_value_prefix: credential.prefix } : {}),
        },
      },
    },
  };
  const codec = { name: 'envoy.filters.http.upstream_codec', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec' } };
  if (upstream === 'plain') {
    // Envoy requires auto SNI and SAN validation on a DFP cluster with HTTP options even without
    // TLS; they are inert here.
    return { ...dfpClusterBase(credentialClusterName(tenant, name, 'plain'), options), typed_extension_protocol_options: httpOptions([injector, codec]) };
  }
  return {
    ...dfpClusterBase(credentialClusterName(tenant, name), options),
    transport_socket: originateTls(options),
    typed_extension_protocol_options: httpOptions([injector, codec]),
  };
}

/**
 * IP destinations of `cidrs` rules: an ORIGINAL_DST cluster that dials the address:port the
 * request's authority names. Only routes whose authority regex accepted a canonical address in an
 * allowed range (routes.ts, ip-authority.ts) lead here, so the address checked is the address
 * dialled. No DNS is involved, hence no guard: SPEC §2 exempts explicit ranges, and cidr-rule.ts
 * refuses the ranges that reach the sidecar's own host.
 */
export function ipCluster(): Record<string, unknown> {
  return {
    name: IP_CLUSTER,
    type: 'ORIGINAL_DST',
    lb_policy: 'CLUSTER_PROVIDED',
    connect_timeout: '5s',
    original_dst_lb_config: { use_http_header: true, http_header_name: ':authority' },
  };
}

/**
 * Transparent mode's tunnels to IP destinations: an ORIGINAL_DST cluster without header override,
 * so it dials the original destination the listener restored (a redirected connection's own
 * address). Only filter chains whose prefix ranges a `cidrs` rule allows lead here (transparent.ts).
 */
export function ipTunnelCluster(): Record<string, unknown> {
  return { name: IP_TUNNEL_CLUSTER, type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', connect_timeout: '5s' };
}
