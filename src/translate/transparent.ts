/**
 * The transparent listener (`exitgate bootstrap --mode transparent`): connections the pod's nat
 * rules redirect to the sidecar (`exitgate redirect-rules`) are judged by what they name, never by
 * the address the agent dialled (research/envoy-egress-notes.md §1, bypass catalogue #8):
 *
 * - TLS (tls_inspector): one filter chain per decision-table row, matched on the original
 *   destination port (original_dst listener filter) and the SNI (`server_names`, whose `*.x`
 *   matches deeper names and never `x`, as policies do); an allowed row resolves the SNI itself
 *   (SNI dynamic forward proxy, sharing the guarded DNS cache) and tunnels to the DFP cluster,
 *   which dials that resolution. Never an ORIGINAL_DST cluster: a spoofed SNI cannot pick the IP.
 * - Plain HTTP (raw_buffer): per listed port, the explicit proxy's HCM with the same RDS route
 *   configuration, so the Host header chooses the virtual host and the DFP cluster dials the name.
 * - No default filter chain: no SNI, an unknown SNI, an unlisted port, an IP literal: no chain
 *   matches and the listener closes the connection (its access log records the denial, flag NR).
 *
 * Envoy's filter chain match narrows by destination port, then server name, then transport
 * protocol, keeping only the most specific candidates at each step and never backtracking: a TLS
 * connection whose SNI no chain lists falls to the port's HTTP chain (no server names), which then
 * fails on transport protocol: closed. Every chain is named (`tls/<verdict>/<policy>/<rule>/...`)
 * and the name travels with its access log entries (%FILTER_CHAIN_NAME%), so each decision names
 * its rule (audit/decision.ts `parseFilterChainName`).
 */
import type { AgentIr, IpRuleIr, TableEntry } from '../ir/agent-ir';
import { formatRef } from '../ir/agent-ir';
import { formatHostPattern } from '../policy/host-pattern';
import { formatCidr, subtractAll, type Cidr } from '../util/cidr';
import { agentPrefix, DEFAULT_DENY_ROUTE, DFP_CLUSTER, IP_TUNNEL_CLUSTER } from './names';
import { dnsCacheConfig } from './dns-cache';
import { toCidrRange } from './guard';
import { connectionLimitNetworkFilters, tunnelRateLimitNetworkFilters } from './filters/limits';
import { listenerAccessLog, tcpProxyAccessLog } from './filters/access-log';
import { drainEpochMetadata, egressHcm } from './listener';
import type { NodeFacts, TranslateOptions } from './options';

export const transparentListenerName = (tenant: string, agent: string): string => `${agentPrefix(tenant, agent)}/transparent`;

/**
 * A cluster with no endpoints: the tcp_proxy of a deny chain points here, finds no host, and
 * closes the connection (flag UH) after logging it with its chain's name. It can dial nothing.
 */
export const TRANSPARENT_DENY_CLUSTER = 'exitgate/transparent-deny';

export function transparentDenyCluster(): Record<string, unknown> {
  return {
    name: TRANSPARENT_DENY_CLUSTER,
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: { cluster_name: TRANSPARENT_DENY_CLUSTER, endpoints: [] },
  };
}

/**
 * What a TLS filter chain does: `allow` tunnels to the name; `deny` (a deny rule), `no-tunnel` (the
 * host is allowed only by rules with `http` or `credential`, which TLS hides: SPEC §2) close;
 * `would-deny` (dry-run) tunnels and is recorded as what enforce mode would deny.
 */
export type TlsChainVerdict = 'allow' | 'deny' | 'no-tunnel' | 'would-deny';
export const TLS_CHAIN_VERDICTS: readonly TlsChainVerdict[] = ['allow', 'deny', 'no-tunnel', 'would-deny'];

/** `tls/<verdict>/<policy>/<rule>/<pattern>:<port>`, or `tls/would-deny/default-deny/*:<port>`. */
export function tlsChainName(verdict: TlsChainVerdict, ref: string, pattern: string, port: number): string {
  return `tls/${verdict}/${ref}/${pattern}:${port}`;
}

/** `ip/allow/<policy>/<rule>/<first range>:<port>`: a tunnel to an IP destination a `cidrs` rule allows. */
export function ipChainName(ref: string, ranges: Cidr[], port: number): string {
  return `ip/allow/${ref}/${formatCidr(ranges[0]!)}${ranges.length > 1 ? '+' : ''}:${port}`;
}

export const httpChainName = (port: number): string => `http/${port}`;

function tcpProxy(cluster: string, statPrefix = 'transparent_tls'): Record<string, unknown> {
  return {
    name: 'envoy.filters.network.tcp_proxy',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
      stat_prefix: statPrefix,
      cluster,
      access_log: tcpProxyAccessLog(),
      // The decision is logged when the tunnel is made, not hours later when it closes.
      access_log_options: { flush_access_log_on_connected: true },
    },
  };
}

/** Resolves the SNI (the guard filters the answers) and tunnels to the DFP cluster, which dials it. */
function tunnelFilters(options: TranslateOptions, port: number): Record<string, unknown>[] {
  return [
    {
      name: 'envoy.filters.network.sni_dynamic_forward_proxy',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.filters.network.sni_dynamic_forward_proxy.v3.FilterConfig',
        dns_cache_config: dnsCacheConfig(options),
        port_value: port,
      },
    },
    tcpProxy(DFP_CLUSTER),
  ];
}

/**
 * One filter chain of the transparent listener: every chain that takes connections counts them
 * against the agent's connection limit and carries the drain epoch (a revocation must close what
 * any chain accepted), so both are added here rather than by each caller.
 */
function filterChain(ir: AgentIr, node: NodeFacts, name: string, match: Record<string, unknown>, filters: Record<string, unknown>[]): Record<string, unknown> {
  return { name, filter_chain_match: match, filters: [...connectionLimitNetworkFilters(ir), ...filters], ...drainEpochMetadata(node) };
}

const httpConnectionManager = (hcm: Record<string, unknown>): Record<string, unknown> => ({ name: 'envoy.filters.network.http_connection_manager', typed_config: hcm });

/** The ports the decision table names, ascending. */
const tablePorts = (ir: AgentIr): number[] => [...new Set(ir.table.map((r) => r.port))].sort((a, b) => a - b);

function tlsVerdict(row: TableEntry, dryRun: boolean): { verdict: TlsChainVerdict; ref: string } {
  if (row.verdict === 'deny') return { verdict: dryRun ? 'would-deny' : 'deny', ref: formatRef(row.ref) };
  // Most specific rule first (agent-ir.ts): the first rule that allows tunnels decides.
  const tunnel = row.routes?.find((r) => r.connect);
  if (tunnel) return { verdict: 'allow', ref: formatRef(tunnel.ref) };
  const first = row.routes?.[0];
  return { verdict: dryRun ? 'would-deny' : 'no-tunnel', ref: formatRef(first?.ref ?? row.ref) };
}

function tlsChain(ir: AgentIr, node: NodeFacts, options: TranslateOptions, row: TableEntry): Record<string, unknown> {
  const { verdict, ref } = tlsVerdict(row, ir.dryRun);
  const pattern = formatHostPattern(row.pattern);
  const forwards = verdict === 'allow' || verdict === 'would-deny';
  return filterChain(
    ir,
    node,
    tlsChainName(verdict, ref, pattern, row.port),
    { destination_port: row.port, server_names: [pattern], transport_protocol: 'tls' },
    forwards ? [...tunnelRateLimitNetworkFilters(ir), ...tunnelFilters(options, row.port)] : [tcpProxy(TRANSPARENT_DENY_CLUSTER)],
  );
}

/**
 * IP destinations (`cidrs` rules). Here the address the agent dialled is itself what a rule
 * allows, so these chains (matched on the original destination's port and address) tunnel to it:
 * the one place an ORIGINAL_DST cluster is right. Per port, the ranges are those of the rules
 * allowing tunnels minus every deny range at that port, each rule keeping only what earlier rules
 * did not claim (Envoy picks the longest matching prefix, not the first rule, so the ranges must be
 * disjoint to keep first-match attribution and deny-wins). Ranges of rules with `http` rules only
 * get a plain-HTTP chain: the HCM's routes judge method and path, and TLS there is closed.
 *
 * A connection to an address no range holds falls to the name-judged chains (Envoy prefers chains
 * with a matching prefix over chains without, and without any, ignores prefixes): a denied or
 * unlisted address with an allowed SNI still reaches only the name's own resolution.
 */
function ipChains(ir: AgentIr, node: NodeFacts, hcm: Record<string, unknown>): Record<string, unknown>[] {
  const allows = ir.ipRules.filter((r) => r.verdict === 'allow') as Array<IpRuleIr & { ports: number[] }>;
  const ports = [...new Set(allows.flatMap((r) => r.ports))].sort((a, b) => a - b);
  const chains: Record<string, unknown>[] = [];
  for (const port of ports) {
    const denied = ir.ipRules.filter((r) => r.verdict === 'deny' && (r.ports === 'all' || r.ports.includes(port))).flatMap((r) => r.cidrs);
    const here = allows.filter((r) => r.ports.includes(port));
    const tunnelled: Cidr[] = [];
    for (const rule of here.filter((r) => r.access?.connect)) {
      const ranges = subtractAll(rule.cidrs, [...denied, ...tunnelled]);
      tunnelled.push(...rule.cidrs);
      if (ranges.length === 0) continue;
      chains.push(
        filterChain(ir, node, ipChainName(formatRef(rule.ref), ranges, port), { destination_port: port, prefix_ranges: ranges.map(toCidrRange) }, [
          ...tunnelRateLimitNetworkFilters(ir),
          tcpProxy(IP_TUNNEL_CLUSTER, 'transparent_ip'),
        ]),
      );
    }
    // Plain HTTP to ranges only L7 rules allow; any rule may match there, the routes decide.
    const judged = subtractAll(here.filter((r) => !r.access?.connect).flatMap((r) => r.cidrs), [...denied, ...tunnelled]);
    if (judged.length > 0) {
      chains.push(
        filterChain(ir, node, `${httpChainName(port)}/ip`, { destination_port: port, prefix_ranges: judged.map(toCidrRange), transport_protocol: 'raw_buffer' }, [httpConnectionManager(hcm)]),
      );
    }
  }
  return chains;
}

/** Ports whose plain HTTP the route configuration can judge: every table port, and 80 for port-less hosts. */
function httpPorts(ir: AgentIr): number[] {
  const ports = tablePorts(ir);
  return ir.bare.length > 0 && !ports.includes(80) ? [...ports, 80].sort((a, b) => a - b) : ports;
}

export function transparentListener(ir: AgentIr, node: NodeFacts, options: TranslateOptions): Record<string, unknown> {
  const chains: Record<string, unknown>[] = ir.table.map((row) => tlsChain(ir, node, options, row));
  if (ir.dryRun) {
    // Dry-run: a TLS name no row lists is let through on the listed ports and recorded as what
    // enforce mode would deny (unlisted ports stay closed: the sidecar does not know where to dial).
    for (const port of tablePorts(ir)) {
      chains.push(
        filterChain(ir, node, tlsChainName('would-deny', DEFAULT_DENY_ROUTE, '*', port), { destination_port: port, transport_protocol: 'tls' }, [
          ...tunnelRateLimitNetworkFilters(ir),
          ...tunnelFilters(options, port),
        ]),
      );
    }
  }
  const hcm = egressHcm(ir, node, options);
  chains.push(...ipChains(ir, node, hcm));
  for (const port of httpPorts(ir)) {
    chains.push(filterChain(ir, node, httpChainName(port), { destination_port: port, transport_protocol: 'raw_buffer' }, [httpConnectionManager(hcm)]));
  }
  if (chains.length === 0) {
    // Envoy refuses a listener without filter chains; an agent with no rule gets one that only
    // port 1 can match, and it closes too (Envoy refuses destination_port 0): everything is closed.
    chains.push({
      name: tlsChainName('deny', DEFAULT_DENY_ROUTE, '*', 1),
      filter_chain_match: { destination_port: 1 },
      filters: [tcpProxy(TRANSPARENT_DENY_CLUSTER)],
      ...drainEpochMetadata(node),
    });
  }
  return {
    name: transparentListenerName(ir.tenant, ir.agent),
    address: { socket_address: { address: node.listen.address, port_value: node.listen.port } },
    listener_filters: [
      // The redirect's original destination becomes the connection's local address, for
      // destination_port matching and the decision's port. It is never dialled.
      { name: 'envoy.filters.listener.original_dst', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst' } },
      { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } },
    ],
    // A client that sends nothing (no ClientHello, no request) is closed.
    listener_filters_timeout: '10s',
    access_log: listenerAccessLog(true),
    filter_chains: chains,
  };
}
