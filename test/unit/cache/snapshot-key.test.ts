/** Nodes whose resources are the same share one snapshot: SotW and Delta ADS do; per-type variants and modes do not. */
import { SnapshotCache } from '../../../src/cache/snapshot-cache';
import { parsePolicyText } from '../../../src/policy/parse';
import { silentLogger } from '../../../src/util/logger';
import { NodeRegistry } from '../../../src/xds/node-registry';

const policies = parsePolicyText('p.yaml', 'apiVersion: exitgate.dev/v1\nkind: EgressPolicy\nmetadata: {name: p, tenant: acme}\nspec:\n  agents: [bot]\n  allow: [{name: a, hosts: [a.test]}]\n').policies;

describe('snapshot keys', () => {
  it('share one snapshot between SotW and Delta ADS nodes of an agent, not with per-type or transparent ones', () => {
    const cache = new SnapshotCache({ guardAllow: [] }, silentLogger());
    cache.setPolicies({ policies, credentials: [] });
    const listen = { address: '127.0.0.1', port: 15001 };
    const node = (extra: object) => ({ tenant: 'acme', agent: 'bot', listen, ...extra });
    const sotw = cache.watch(node({ xdsProtocol: 'sotw' }), () => undefined).current;
    const delta = cache.watch(node({ xdsProtocol: 'delta' }), () => undefined).current;
    const plain = cache.watch(node({}), () => undefined).current;
    expect(delta).toBe(sotw);
    expect(plain).toBe(sotw);
    expect(cache.watchedSnapshots).toBe(1);
    const perType = cache.watch(node({ xdsProtocol: 'delta-per-type' }), () => undefined).current;
    const transparent = cache.watch(node({ xdsProtocol: 'delta', mode: 'transparent' }), () => undefined).current;
    expect(perType).not.toBe(sotw);
    expect(transparent).not.toBe(sotw);
    expect(cache.watchedSnapshots).toBe(3);
  });
});

describe('NodeRegistry.connected', () => {
  it('counts nodes with an open stream across opens, closes and a stray extra close', () => {
    const r = new NodeRegistry({ graceMs: 1000 });
    r.open('acme/bot/1', 'acme', 'bot');
    r.open('acme/bot/1', 'acme', 'bot'); // a second stream of the same node
    r.open('acme/bot/2', 'acme', 'bot');
    expect(r.connected).toBe(2);
    r.close('acme/bot/1');
    expect(r.connected).toBe(2);
    r.close('acme/bot/1');
    r.close('acme/bot/1');
    expect(r.connected).toBe(1);
    expect(r.size).toBe(2); // kept for the grace period
    r.open('acme/bot/1', 'acme', 'bot');
    expect(r.connected).toBe(2);
    r.close('acme/bot/1');
    r.close('acme/bot/2');
    expect(r.connected).toBe(0);
  });
});
