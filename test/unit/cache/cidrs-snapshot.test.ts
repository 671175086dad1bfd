/**
 * Regression: a `cidrs` rule puts bigints (the ranges) in the IR, and the snapshot cache keys a
 * node's configuration on the IR's JSON; JSON.stringify throws on a bigint, which crashed the
 * xDS stream of every sidecar whose agent had a `cidrs` rule (found by test/security/cidrs.test.ts).
 */
import { SnapshotCache } from '../../../src/cache/snapshot-cache';
import { silentLogger } from '../../../src/util/logger';
import { TYPE } from '../../../src/xds/type-urls';
import { policySetOf } from '../../support/policy-text';

const policies = (cidr: string) =>
  policySetOf(`apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: p, tenant: acme }
spec:
  agents: ["coder"]
  allow: [{ name: r, cidrs: ["${cidr}"], ports: [9090] }]
  deny: [{ name: d, cidrs: ["2001:db8::/120"] }]
`);

describe('snapshot cache with cidrs rules', () => {
  it('builds, versions and rebuilds the configuration of an agent with cidrs rules', () => {
    const cache = new SnapshotCache({ guardAllow: [] }, silentLogger());
    cache.setPolicies(policies('203.0.113.0/24'));
    let notified = 0;
    const watch = cache.watch({ tenant: 'acme', agent: 'coder', listen: { address: '127.0.0.1', port: 15001 } }, () => (notified += 1));
    expect(watch.current?.resources.get(TYPE.route as never)?.size).toBe(1);
    expect(cache.setPolicies(policies('203.0.113.0/24'))).toEqual({ changed: 0, unchanged: 1, failed: 0 });
    expect(cache.setPolicies(policies('203.0.114.0/24'))).toEqual({ changed: 1, unchanged: 0, failed: 0 });
    expect(notified).toBe(1);
  });
});
