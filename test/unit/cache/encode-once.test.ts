/**
 * Encode once, version by content (ARCHITECTURE.md principle 5): a resource's encoded bytes are
 * shared by every node whose configuration holds the same resource, and unchanged content
 * notifies nobody.
 */
import { SnapshotCache } from '../../../src/cache/snapshot-cache';
import { silentLogger } from '../../../src/util/logger';
import { TYPE } from '../../../src/xds/type-urls';
import type { Snapshot } from '../../../src/cache/snapshot';
import { policySetOf } from '../../support/policy-text';

const policies = (hosts: string[]) =>
  policySetOf(`apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: p, tenant: acme }
spec:
  agents: ["*"]
  allow: [{ name: r, hosts: ${JSON.stringify(hosts)} }]
`);

const node = (agent: string, port: number) => ({ tenant: 'acme', agent, listen: { address: '127.0.0.1', port } });

describe('encode once', () => {
  it('shares one encoded buffer between nodes holding the same resource', () => {
    const cache = new SnapshotCache({ guardAllow: [] }, silentLogger());
    cache.setPolicies(policies(['a.example.test']));
    const a = cache.watch(node('coder', 15001), () => undefined).current!;
    const b = cache.watch(node('coder', 15002), () => undefined).current!; // same agent, other listen port
    const c = cache.watch(node('reviewer', 15001), () => undefined).current!; // other agent, same policy via "*"

    const bytes = (s: Snapshot, type: string) => [...(s.resources.get(type as never)?.values() ?? [])][0]!;
    // The listener differs (its address); the route config of the same agent is the same object.
    expect(bytes(a, TYPE.listener).value).not.toBe(bytes(b, TYPE.listener).value);
    expect(bytes(a, TYPE.route).value).toBe(bytes(b, TYPE.route).value);
    // The DFP cluster is the same for everyone: one buffer for all three nodes.
    expect(bytes(a, TYPE.cluster).value).toBe(bytes(b, TYPE.cluster).value);
    expect(bytes(a, TYPE.cluster).value).toBe(bytes(c, TYPE.cluster).value);
    // Another agent's route config has another name, so other content: not shared.
    expect(bytes(c, TYPE.route).value).not.toBe(bytes(a, TYPE.route).value);
  });

  it('notifies only the nodes whose content changed, and nobody for unchanged content', () => {
    const cache = new SnapshotCache({ guardAllow: [] }, silentLogger());
    cache.setPolicies(policies(['a.example.test']));
    let coder = 0;
    cache.watch(node('coder', 15001), () => (coder += 1));
    expect(cache.setPolicies(policies(['a.example.test']))).toEqual({ changed: 0, unchanged: 1, failed: 0 });
    expect(coder).toBe(0);
    expect(cache.setPolicies(policies(['b.example.test']))).toEqual({ changed: 1, unchanged: 0, failed: 0 });
    expect(coder).toBe(1);
  });

  it('drops encoded resources no node uses any more', () => {
    const cache = new SnapshotCache({ guardAllow: [] }, silentLogger());
    cache.setPolicies(policies(['a.example.test']));
    const w = cache.watch(node('coder', 15001), () => undefined);
    expect(cache.watchedSnapshots).toBe(1);
    w.cancel();
    expect(cache.watchedSnapshots).toBe(0);
    expect((cache as unknown as { encoded: { size: number } }).encoded.size).toBe(0);
  });
});
