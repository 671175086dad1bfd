/**
 * The egress route configuration: one virtual host per decision-table row, so Envoy's own
 * virtual-host selection (exact name, then longest wildcard suffix, then "*") evaluates the table
 * exactly as `decide()` does; inside a virtual host the routes are the row's rules in order, then
 * a deny. Kept in RDS so a policy change reaches new requests at once, without a listener drain.
 */
import type { AgentIr, BareEntry, IpRuleIr, RouteIr, TableEntry } from '../ir/agent-ir';
import { formatHostPattern } from '../policy/host-pattern';
import { DEFAULT_DENY_ROUTE, DFP_CLUSTER, DFP_TLS_CLUSTER, IP_CLUSTER, credentialClusterName, egressRouteConfigName, routeName, virtualHostName } from './names';
import { authorityRegexes } from './ip-authority';
import type { CredentialValues } from './options';

/** A denial names no rule, policy or address: the agent learns nothing it could use (SPEC §1). */
export const DENY_BODY = 'exitgate: egress to this destination is not allowed\n';
/** A rule whose credential cannot be loaded fails closed, and says so. */
export const CREDENTIAL_UNAVAILABLE_BODY = 'exitgate: the credential for this destination is unavailable\n';

type Route = Record<string, unknown>;

/** Prefix of route names whose requests enforce mode would deny but dry-run lets through. */
export const WOULD_DENY_PREFIX = 'would-deny/';

/**
 * What a route that denies becomes: a 403, or in dry-run a forward to the destination, named so
 * the access log records `would-deny` with the rule (the guard still applies: the DNS cache
 * filters forbidden addresses whatever the route).
 */
interface DenyMode {
  dryRun: boolean;
  /** Dry-run: which cluster a plain request goes to (TLS-originating rows keep their TLS). */
  plainCluster?: string;
}

type HeaderMatcher = Record<string, unknown>;

function denyRoute(name: string, mode: DenyMode, connect: boolean, headers: HeaderMatcher[] = []): Route {
  const match = { ...(connect ? { connect_matcher: {} } : { prefix: '/' }), ...(headers.length ? { headers } : {}) };
  if (!mode.dryRun) return { name, match, direct_response: { status: 403, body: { inline_string: DENY_BODY } } };
  const wouldName = `${WOULD_DENY_PREFIX}${name}`;
  if (connect) return { name: wouldName, match, route: connectAction(DFP_CLUSTER) };
  return { name: wouldName, match, route: { cluster: mode.plainCluster ?? DFP_CLUSTER, timeout: '60s' } };
}

/**
 * connect_config makes Envoy terminate the CONNECT and tunnel TCP (upgrades docs); timeout 0
 * because a tunnel lives as long as its connection.
 */
const connectAction = (cluster: string): Record<string, unknown> => ({ cluster, upgrade_configs: [{ upgrade_type: 'CONNECT', connect_config: {} }], timeout: '0s' });

/** A port-less authority means port 80 only for `http://`; `GET https://host/` must not become cleartext to :80. */
const HTTP_SCHEME_ONLY = { name: ':scheme', string_match: { exact: 'http' } };

function methodMatcher(methods: string[] | undefined): HeaderMatcher[] {
  if (!methods) return [];
  return [{ name: ':method', string_match: { safe_regex: { regex: `^(${methods.join('|')})$` } } }];
}

interface PlainContext {
  tenant: string;
  credentials: CredentialValues;
  /** Port-less requests only: require http:// and, when the dialled port is not the cluster default, say which. */
  bare?: { port: number; hostLiteral?: string };
  /** IP destinations: the authority must match, and the cluster dials it. */
  ip?: { authority: HeaderMatcher };
}

/** Plain-HTTP routes of one rule: one per path condition, narrowed to its methods. */
function plainRoutes(r: RouteIr, ctx: PlainContext): Route[] {
  const name = routeName(r.ref);
  const credential = r.credential ? ctx.credentials.get(`${ctx.tenant}/${r.credential}`) : undefined;
  if (r.credential && !credential) {
    // Fail closed: without its secret the request must not leave, not even without the header.
    return [{ name, match: { prefix: '/' }, direct_response: { status: 503, body: { inline_string: CREDENTIAL_UNAVAILABLE_BODY } } }];
  }
  const cluster = ctx.ip ? IP_CLUSTER : r.credential ? credentialClusterName(ctx.tenant, r.credential, r.upstream) : r.upstream === 'tls' ? DFP_TLS_CLUSTER : DFP_CLUSTER;
  const headers = [...(ctx.ip ? [ctx.ip.authority] : []), ...(ctx.bare ? [HTTP_SCHEME_ONLY] : []), ...methodMatcher(r.methods)];
  const action: Record<string, unknown> = { cluster, timeout: '60s' };
  const route: Route = { name, route: action };
  if (ctx.bare?.hostLiteral) {
    // The agent named no port; Envoy dials the rule's port (the DFP filter resolves this authority).
    route.typed_per_filter_config = {
      'envoy.filters.http.dynamic_forward_proxy': {
        '@type': 'type.googleapis.com/envoy.extensions.filters.http.dynamic_forward_proxy.v3.PerRouteConfig',
        host_rewrite_literal: ctx.bare.hostLiteral,
      },
    };
  }
  // Belt and braces with the injector's overwrite: the agent's own value never travels upstream.
  if (credential) route.request_headers_to_remove = [credential.header.toLowerCase()];
  const paths = r.paths ?? [{ prefix: '/' }];
  return paths.map((p) => ({ ...route, match: { ...('exact' in p ? { path: p.exact } : { prefix: p.prefix }), ...(headers.length ? { headers } : {}) } }));
}

const denyTail = (connect: boolean, mode: DenyMode, name = DEFAULT_DENY_ROUTE): Route[] => [
  ...(connect ? [denyRoute(name, mode, true)] : []),
  denyRoute(name, mode, false),
];

/** In dry-run, unmatched plain requests of a TLS-originating row keep TLS (minus any credential). */
function rowMode(routes: RouteIr[] | undefined, dryRun: boolean): DenyMode {
  return { dryRun, ...(dryRun && routes?.[0]?.upstream === 'tls' ? { plainCluster: DFP_TLS_CLUSTER } : {}) };
}

function rowRoutes(row: TableEntry, tenant: string, credentials: CredentialValues, dryRun: boolean): Route[] {
  if (row.verdict === 'deny') return denyTail(true, { dryRun }, routeName(row.ref));
  const routes: Route[] = [];
  for (const r of row.routes ?? []) {
    if (r.connect) routes.push({ name: routeName(r.ref), match: { connect_matcher: {} }, route: connectAction(DFP_CLUSTER) });
  }
  for (const r of row.routes ?? []) routes.push(...plainRoutes(r, { tenant, credentials }));
  return [...routes, ...denyTail(true, rowMode(row.routes, dryRun))];
}

function bareRoutes(row: BareEntry, tenant: string, credentials: CredentialValues, dryRun: boolean): Route[] {
  if (row.verdict === 'deny') return denyTail(false, { dryRun }, routeName(row.ref));
  const out: Route[] = [];
  for (const r of row.routes ?? []) {
    const clusterDefault = r.upstream === 'tls' ? 443 : 80;
    const hostLiteral = row.port !== clusterDefault && row.pattern.kind === 'exact' ? `${row.pattern.name}:${row.port}` : undefined;
    out.push(...plainRoutes(r, { tenant, credentials, bare: { port: row.port, ...(hostLiteral ? { hostLiteral } : {}) } }));
  }
  return [...out, ...denyTail(false, rowMode(row.routes, dryRun))];
}

/**
 * Routes of the catch-all virtual host for IP-literal destinations (`cidrs` rules), in the IR's
 * match order: a deny rule's routes before any allow's. A host name never reaches them (its
 * authority is no IP literal), and an IP literal never matches a named virtual host (host
 * patterns cannot be IP literals or end in a numeric label).
 */
function ipRuleRoutes(rule: IpRuleIr, tenant: string, credentials: CredentialValues, dryRun: boolean): Route[] {
  const routes: Route[] = [];
  for (const cidr of rule.cidrs) {
    for (const regex of authorityRegexes(cidr, rule.ports)) {
      const authority: HeaderMatcher = { name: ':authority', string_match: { safe_regex: { regex } } };
      if (rule.verdict === 'deny') {
        // Dry-run lets it through by the guarded dynamic forward proxy, never by the unguarded
        // ORIGINAL_DST cluster: a deny rule may name any range (metadata, loopback), and would-deny
        // must not become a way past the guard to it.
        const mode: DenyMode = { dryRun };
        routes.push(denyRoute(routeName(rule.ref), mode, true, [authority]), denyRoute(routeName(rule.ref), mode, false, [authority]));
        continue;
      }
      const access = rule.access!;
      if (access.connect) routes.push({ name: routeName(rule.ref), match: { connect_matcher: {}, headers: [authority] }, route: connectAction(IP_CLUSTER) });
      routes.push(...plainRoutes({ ref: rule.ref, ...access }, { tenant, credentials, ip: { authority } }));
    }
  }
  return routes;
}

export function egressRouteConfig(ir: AgentIr, credentials: CredentialValues = new Map()): Record<string, unknown> {
  const virtualHosts: Record<string, unknown>[] = [];
  for (const row of ir.table) {
    virtualHosts.push({
      name: virtualHostName(ir.tenant, ir.agent, row.ref, row.pattern, row.port),
      domains: [`${formatHostPattern(row.pattern)}:${row.port}`],
      routes: rowRoutes(row, ir.tenant, credentials, ir.dryRun),
    });
  }
  // `http://host/path` carries no port: plain HTTP only (a CONNECT always names its port, so a
  // port-less CONNECT finds no CONNECT route here and is refused).
  for (const row of ir.bare) {
    virtualHosts.push({
      name: virtualHostName(ir.tenant, ir.agent, row.ref, row.pattern, 'implied'),
      domains: [formatHostPattern(row.pattern)],
      routes: bareRoutes(row, ir.tenant, credentials, ir.dryRun),
    });
  }
  virtualHosts.push({
    name: `${egressRouteConfigName(ir.tenant, ir.agent)}/${DEFAULT_DENY_ROUTE}`,
    domains: ['*'],
    routes: [...ir.ipRules.flatMap((rule) => ipRuleRoutes(rule, ir.tenant, credentials, ir.dryRun)), ...denyTail(true, { dryRun: ir.dryRun })],
  });
  return {
    name: egressRouteConfigName(ir.tenant, ir.agent),
    virtual_hosts: virtualHosts,
    // Virtual hosts are chosen on "host:port"; the port is part of every allowlist entry.
    ignore_port_in_host_matching: false,
    // Proxy credentials are for the proxy hop, never for the destination.
    request_headers_to_remove: ['proxy-authorization'],
  };
}
