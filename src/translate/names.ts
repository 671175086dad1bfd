/**
 * Resource names that say where a resource came from (ARCHITECTURE.md principle 6), so an
 * operator reading Envoy's config dump or access log can find the policy and rule behind it.
 */
import { formatHostPattern, type HostPattern } from '../policy/host-pattern';
import { formatRef, type RuleRef } from '../ir/agent-ir';

/** The one cluster every egress route uses; the same bytes for every node, so encoded once. */
export const DFP_CLUSTER = 'exitgate/dfp';
/** Plain HTTP over TLS that Envoy originates (`tls: originate`), verifying the destination. */
export const DFP_TLS_CLUSTER = 'exitgate/dfp-tls';
export const DNS_CACHE = 'exitgate_dfp';
/** IP destinations of `cidrs` rules: dials the address the request's authority names (routes.ts checked it). */
export const IP_CLUSTER = 'exitgate/ip';
/** Transparent mode's tunnels to IP destinations of `cidrs` rules: dials the redirected connection's original destination. */
export const IP_TUNNEL_CLUSTER = 'exitgate/ip/original-destination';
/** A credential's secret (SDS) and the TLS-originating cluster that injects it: per tenant. */
export const credentialSecretName = (tenant: string, credential: string): string => `exitgate/${tenant}/credential/${credential}`;
export const credentialClusterName = (tenant: string, credential: string, upstream: 'tls' | 'plain' = 'tls'): string =>
  `exitgate/${tenant}/credential/${credential}${upstream === 'plain' ? '/plain-http' : ''}`;
export const DEFAULT_DENY_ROUTE = 'default-deny';
/** The static cluster in every sidecar bootstrap that reaches the control plane. */
export const XDS_CLUSTER = 'exitgate-xds';

export const agentPrefix = (tenant: string, agent: string): string => `exitgate/${tenant}/${agent}`;
export const egressListenerName = (tenant: string, agent: string): string => `${agentPrefix(tenant, agent)}/egress`;
export const egressRouteConfigName = (tenant: string, agent: string): string => `${agentPrefix(tenant, agent)}/egress`;

/** Route names are `<policy>/<rule>` so %ROUTE_NAME% in an access log names the rule behind a verdict. */
export const routeName = (ref: RuleRef): string => formatRef(ref);

export const virtualHostName = (tenant: string, agent: string, ref: RuleRef, pattern: HostPattern, port: number | 'implied'): string =>
  `${agentPrefix(tenant, agent)}/${formatRef(ref)}/${formatHostPattern(pattern)}:${port === 'implied' ? 'no-port' : port}`;
