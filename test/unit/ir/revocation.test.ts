/** Which policy changes revoke access (and so drain open tunnels), and epochs that survive restarts. */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildAgentIr } from '../../../src/ir/build-ir';
import { accessKeys, revokesAccess } from '../../../src/ir/revocation';
import { FileDrainEpochs } from '../../../src/store/drain-epochs';
import { SnapshotCache } from '../../../src/cache/snapshot-cache';
import { silentLogger } from '../../../src/util/logger';
import { translate } from '../../../src/translate/translate';
import { policySetOf } from '../../support/policy-text';

const set = (allow: string, deny = '') =>
  policySetOf(`apiVersion: exitgate.dev/v1\nkind: EgressPolicy\nmetadata: {name: p, tenant: acme}\nspec:\n  agents: [bot]\n  allow: ${allow}\n${deny ? `  deny: ${deny}\n` : ''}`);
const keys = (allow: string, deny = '') => accessKeys(buildAgentIr(set(allow, deny), 'acme', 'bot'));

describe('revokesAccess', () => {
  const base = '[{name: a, hosts: [a.test]}, {name: b, hosts: [b.test]}]';
  it.each([
    ['removing a host', '[{name: a, hosts: [a.test]}]', '', true],
    ['removing a port', '[{name: a, hosts: [a.test]}, {name: b, hosts: [b.test], ports: [8443]}]', '', true],
    ['adding a deny', base, '[{name: d, hosts: [a.test]}]', true],
    ['narrowing to methods', '[{name: a, hosts: [a.test], tls: originate, http: {methods: [GET]}}, {name: b, hosts: [b.test]}]', '', true],
    ['adding a host', '[{name: a, hosts: [a.test]}, {name: b, hosts: [b.test, c.test]}]', '', false],
    ['adding a port', '[{name: a, hosts: [a.test]}, {name: b, hosts: [b.test], ports: [443, 8443]}]', '', false],
    ['no change', base, '', false],
  ])('%s: %s', (_what, allow, deny, expected) => {
    expect(revokesAccess(keys(base), keys(allow, deny))).toBe(expected);
  });
});

describe('drain epochs', () => {
  it('bump on a revocation only, and survive a restart so the listener is byte-identical', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-epochs-'));
    const file = path.join(dir, 'epochs.json');
    const node = { tenant: 'acme', agent: 'bot', listen: { address: '127.0.0.1', port: 15001 } };
    const epochs: number[] = [];
    const spy: typeof translate = (ir, n, o, c) => (epochs.push(n.drainEpoch ?? 0), translate(ir, n, o, c));
    const store1 = new FileDrainEpochs(file, silentLogger());
    const cache1 = new SnapshotCache({ guardAllow: [] }, silentLogger(), spy, store1);
    cache1.setPolicies(set('[{name: a, hosts: [a.test]}, {name: b, hosts: [b.test]}]'));
    const first = cache1.watch(node, () => undefined).current!;
    cache1.setPolicies(set('[{name: a, hosts: [a.test]}]')); // revoke b
    cache1.setPolicies(set('[{name: a, hosts: [a.test]}, {name: c, hosts: [c.test]}]')); // add c: no bump
    expect(epochs).toEqual([0, 1, 1]);
    const listenerBefore = [...cache1.watch(node, () => undefined).current!.resources.values()].flatMap((m) => [...m.values()]).find((r) => r.typeUrl.endsWith('Listener'))!;
    await store1.flush();

    // A restarted control plane with the same policy builds the same listener bytes.
    const cache2 = new SnapshotCache({ guardAllow: [] }, silentLogger(), translate, new FileDrainEpochs(file, silentLogger()));
    cache2.setPolicies(set('[{name: a, hosts: [a.test]}, {name: c, hosts: [c.test]}]'));
    const listenerAfter = [...cache2.watch(node, () => undefined).current!.resources.values()].flatMap((m) => [...m.values()]).find((r) => r.typeUrl.endsWith('Listener'))!;
    expect(listenerAfter.hash).toBe(listenerBefore.hash);
    expect(first).toBeDefined();

    // A revocation made while the control plane was down still drains after the restart.
    const cache3 = new SnapshotCache({ guardAllow: [] }, silentLogger(), spy, new FileDrainEpochs(file, silentLogger()));
    epochs.length = 0;
    cache3.setPolicies(set('[{name: c, hosts: [c.test]}]'));
    cache3.watch(node, () => undefined);
    expect(epochs).toEqual([2]);
  });
});
