/**
 * The egress route configuration: one virtual host per decision-table row, so Envoy's own
 * virtual-host selection (exact name, then longest wildcard suffix, then "*") evaluates the table
 * exactly as `decide()` does. Kept in RDS so a policy change reaches new requests at once,
 * without a listener drain.
 */
import type { AgentIr, TableEntry } from '../ir/agent-ir';
import { formatHostPattern } from '../policy/host-pattern';
import { DEFAULT_DENY_ROUTE, DFP_CLUSTER, egressRouteConfigName, routeName, virtualHostName } from './names';

/** A denial names no rule, policy or address: the agent learns nothing it could use (SPEC §1). */
export const DENY_BODY = 'exitgate: egress to this destination is not allowed\n';

type Route = Record<string, unknown>;

const deny = (name: string): Route => ({ direct_response: { status: 403, body: { inline_string: DENY_BODY } }, name });

/** A port-less authority means port 80 only for `http://`; `GET https://host/` must not become cleartext to :80. */
const HTTP_SCHEME_ONLY = { headers: [{ name: ':scheme', string_match: { exact: 'http' } }] };

function allowRoutes(name: string, connect: boolean): Route[] {
  const routes: Route[] = [];
  if (connect) {
    routes.push({
      name,
      match: { connect_matcher: {} },
      // connect_config makes Envoy terminate the CONNECT and tunnel TCP (upgrades docs);
      // timeout 0 because a tunnel lives as long as its connection.
      route: { cluster: DFP_CLUSTER, upgrade_configs: [{ upgrade_type: 'CONNECT', connect_config: {} }], timeout: '0s' },
    });
  }
  if (connect) routes.push({ name, match: { prefix: '/' }, route: { cluster: DFP_CLUSTER, timeout: '60s' } });
  else routes.push({ name, match: { prefix: '/', ...HTTP_SCHEME_ONLY }, route: { cluster: DFP_CLUSTER, timeout: '60s' } }, { ...deny(DEFAULT_DENY_ROUTE), match: { prefix: '/' } });
  return routes;
}

function denyRoutes(name: string, connect: boolean): Route[] {
  const routes: Route[] = [];
  if (connect) routes.push({ ...deny(name), match: { connect_matcher: {} } });
  routes.push({ ...deny(name), match: { prefix: '/' } });
  return routes;
}

function rowRoutes(row: TableEntry, connect: boolean): Route[] {
  const name = routeName(row.ref);
  return row.verdict === 'allow' ? allowRoutes(name, connect) : denyRoutes(name, connect);
}

export function egressRouteConfig(ir: AgentIr): Record<string, unknown> {
  const virtualHosts: Record<string, unknown>[] = [];
  for (const row of ir.table) {
    const pattern = formatHostPattern(row.pattern);
    virtualHosts.push({
      name: virtualHostName(ir.tenant, ir.agent, row.ref, row.pattern, row.port),
      domains: [`${pattern}:${row.port}`],
      routes: rowRoutes(row, true),
    });
    if (row.port === 80) {
      // `http://host/path` carries no port: plain HTTP only. A CONNECT always names its port,
      // so this host has no CONNECT route and a port-less CONNECT is refused.
      virtualHosts.push({
        name: virtualHostName(ir.tenant, ir.agent, row.ref, row.pattern, 'implied'),
        domains: [pattern],
        routes: rowRoutes(row, false),
      });
    }
  }
  virtualHosts.push({
    name: `${egressRouteConfigName(ir.tenant, ir.agent)}/${DEFAULT_DENY_ROUTE}`,
    domains: ['*'],
    routes: [
      { ...deny(DEFAULT_DENY_ROUTE), match: { connect_matcher: {} } },
      { ...deny(DEFAULT_DENY_ROUTE), match: { prefix: '/' } },
    ],
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
