/**
 * Regression (found by test/security/cidrs.test.ts in the sealed world): in dry-run, the routes of
 * a `cidrs` deny rule forwarded would-deny traffic to the ORIGINAL_DST cluster `exitgate/ip`, which
 * has no guard; since a deny rule may name any range (127.0.0.0/8, 169.254.0.0/16, ...), writing a
 * deny rule made the metadata service and the sidecar's own loopback reachable in dry-run. They
 * must go through the guarded dynamic forward proxy, like the dry-run default route.
 */
import { translate } from '../../../src/translate/translate';
import { egressRouteConfig } from '../../../src/translate/routes';
import { DFP_CLUSTER, IP_CLUSTER } from '../../../src/translate/names';
import { agentIrOf } from '../../support/policy-text';

const irOf = (mode: 'dry-run' | 'enforce', allow: string) =>
  agentIrOf(`apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: p, tenant: acme }
spec:
  agents: ["coder"]
  mode: ${mode}
  allow: ${allow}
  deny:
    - name: no-internal
      cidrs: ["127.0.0.0/8", "169.254.0.0/16", "::1/128"]
`);

type Route = { name: string; route?: { cluster: string }; direct_response?: unknown };
const routesOf = (config: Record<string, unknown>): Route[] => (config.virtual_hosts as Array<{ routes: Route[] }>).flatMap((v) => v.routes);

describe('cidrs deny rules in dry-run', () => {
  it('let would-deny traffic through the guarded DFP cluster, never the unguarded IP cluster', () => {
    const ir = irOf('dry-run', '[{ name: up, cidrs: ["198.51.100.3/32"], ports: [80] }]');
    const routes = routesOf(egressRouteConfig(ir));
    const wouldDeny = routes.filter((r) => r.name === 'would-deny/p/no-internal');
    expect(wouldDeny.length).toBeGreaterThan(0);
    for (const r of wouldDeny) expect(r.route?.cluster).toBe(DFP_CLUSTER);
    // Only the allow rule's routes dial the authority.
    expect(routes.filter((r) => r.route?.cluster === IP_CLUSTER).map((r) => r.name)).toEqual(['p/up', 'p/up']);
  });

  it('need no IP cluster without an allow rule', () => {
    const ir = irOf('dry-run', '[{ name: h, hosts: ["a.example.test"] }]');
    const out = translate(ir, { tenant: 'acme', agent: 'coder', listen: { address: '127.0.0.1', port: 15001 } } as never, { guardAllow: [] } as never);
    expect(out.clusters.map((c) => c.name)).not.toContain(IP_CLUSTER);
  });

  it('deny with a 403 in enforce mode', () => {
    const routes = routesOf(egressRouteConfig(irOf('enforce', '[{ name: up, cidrs: ["198.51.100.3/32"], ports: [80] }]')));
    for (const r of routes.filter((x) => x.name === 'p/no-internal')) expect(r.direct_response).toBeDefined();
  });
});
