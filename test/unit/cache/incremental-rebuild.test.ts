/**
 * A policy change rebuilds only the agents it applies to: agents whose applying policies are the
 * same objects as at their last build (the store reuses the parse of unchanged files) and whose
 * tenant's credentials did not change are neither rebuilt nor translated.
 */
import { SnapshotCache } from '../../../src/cache/snapshot-cache';
import { ParseCache } from '../../../src/policy/parse-cache';
import { translate } from '../../../src/translate/translate';
import { InMemoryDrainEpochs } from '../../../src/store/drain-epochs';
import { silentLogger } from '../../../src/util/logger';
import type { PolicySet } from '../../../src/policy/documents';
import type { CredentialValues, NodeFacts } from '../../../src/translate/options';
import type { AgentIr } from '../../../src/ir/agent-ir';

const policyText = (tenant: string, name: string, agents: string[], hosts: string[], extra = '') => `apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: ${name}, tenant: ${tenant} }
spec:
  agents: ${JSON.stringify(agents)}
  allow: [{ name: r, hosts: ${JSON.stringify(hosts)}${extra} }]
`;
const credentialText = (tenant: string) => `apiVersion: exitgate.dev/v1
kind: Credential
metadata: { name: key, tenant: ${tenant} }
spec: { header: authorization, prefix: "Bearer ", source: { env: KEY } }
`;

/** Files by name -> a PolicySet, parsed through one ParseCache as the store does. */
function sets() {
  const cache = new ParseCache();
  return (files: Record<string, string>): PolicySet => {
    const set: PolicySet = { policies: [], credentials: [] };
    for (const [name, text] of Object.entries(files)) {
      const parsed = cache.parse(name, text);
      expect(parsed.errors).toEqual([]);
      set.policies.push(...parsed.policies);
      set.credentials.push(...parsed.credentials);
    }
    return set;
  };
}

const node = (tenant: string, agent: string, port = 15001) => ({ tenant, agent, listen: { address: '127.0.0.1', port } });

function world() {
  const calls: string[] = [];
  const spy = jest.fn((ir: AgentIr, n: NodeFacts, o: Parameters<typeof translate>[2], c?: CredentialValues) => {
    calls.push(`${ir.tenant}/${ir.agent}:${n.listen.port}`);
    return translate(ir, n, o, c);
  });
  const drain = new InMemoryDrainEpochs();
  const cache = new SnapshotCache({ guardAllow: [] }, silentLogger(), spy, drain);
  return { cache, calls, drain };
}

const base = {
  'acme/shared.yaml': policyText('acme', 'shared', ['*'], ['shared.example.test']),
  'acme/a1.yaml': policyText('acme', 'a1', ['agent-1'], ['one.example.test']),
  'acme/a2.yaml': policyText('acme', 'a2', ['agent-2'], ['two.example.test']),
  'acme/a3.yaml': policyText('acme', 'a3', ['agent-3'], ['three.example.test']),
  'beta/b1.yaml': policyText('beta', 'b1', ['agent-1'], ['beta.example.test']),
};

describe('incremental rebuilds', () => {
  it('rebuilds only the agent whose policy changed; a tenant-wide change rebuilds that tenant', () => {
    const { cache, calls } = world();
    const set = sets();
    cache.setPolicies(set(base));
    const pushes = new Map<string, number>();
    const watch = (t: string, a: string, port?: number) => cache.watch(node(t, a, port), () => pushes.set(`${t}/${a}`, (pushes.get(`${t}/${a}`) ?? 0) + 1));
    for (const a of ['agent-1', 'agent-2', 'agent-3']) watch('acme', a);
    watch('acme', 'agent-1', 15002); // a second snapshot of agent-1 (another listen port)
    watch('beta', 'agent-1');
    expect(calls).toHaveLength(5);
    calls.length = 0;

    // The same files again (the store's parse cache hands back the same objects): nothing is translated.
    expect(cache.setPolicies(set(base))).toEqual({ changed: 0, unchanged: 5, failed: 0 });
    expect(calls).toEqual([]);

    // One agent's policy: only its two snapshots are translated and pushed.
    const v2 = { ...base, 'acme/a2.yaml': policyText('acme', 'a2', ['agent-2'], ['two-b.example.test']) };
    expect(cache.setPolicies(set(v2))).toEqual({ changed: 1, unchanged: 4, failed: 0 });
    expect(calls).toEqual(['acme/agent-2:15001']);
    const v3 = { ...v2, 'acme/a1.yaml': policyText('acme', 'a1', ['agent-1'], ['one-b.example.test']) };
    expect(cache.setPolicies(set(v3))).toEqual({ changed: 2, unchanged: 3, failed: 0 });
    expect(calls.slice(1).sort()).toEqual(['acme/agent-1:15001', 'acme/agent-1:15002']);
    expect([...pushes]).toEqual([
      ['acme/agent-2', 1],
      ['acme/agent-1', 2],
    ]);
    calls.length = 0;

    // The tenant-wide policy: every acme snapshot, no beta one.
    expect(cache.setPolicies(set({ ...v3, 'acme/shared.yaml': policyText('acme', 'shared', ['*'], ['shared-b.example.test']) }))).toEqual({ changed: 4, unchanged: 1, failed: 0 });
    expect(calls.filter((c) => c.startsWith('beta/'))).toEqual([]);
    expect(calls).toHaveLength(4);
  });

  it('a re-parsed but equal policy (another document of its file changed) is built, not translated, and adopted', () => {
    const { cache, calls } = world();
    const set = sets();
    const files = { 'acme/all.yaml': `${policyText('acme', 'p1', ['agent-1'], ['one.example.test'])}---\n${policyText('acme', 'p2', ['agent-2'], ['two.example.test'])}` };
    cache.setPolicies(set(files));
    cache.watch(node('acme', 'agent-1'), () => undefined);
    cache.watch(node('acme', 'agent-2'), () => undefined);
    calls.length = 0;
    const changed = { 'acme/all.yaml': `${policyText('acme', 'p1', ['agent-1'], ['one.example.test'])}---\n${policyText('acme', 'p2', ['agent-2'], ['two-b.example.test'])}` };
    expect(cache.setPolicies(set(changed))).toEqual({ changed: 1, unchanged: 1, failed: 0 });
    expect(calls).toEqual(['acme/agent-2:15001']);
    calls.length = 0;
    expect(cache.setPolicies(set(changed))).toEqual({ changed: 0, unchanged: 2, failed: 0 });
    expect(calls).toEqual([]);
  });

  it('a credential rotation rebuilds the tenant that uses it, and only that one', () => {
    const { cache, calls } = world();
    const set = sets();
    const files = {
      'acme/cred.yaml': credentialText('acme'),
      'acme/api.yaml': policyText('acme', 'api', ['agent-1'], ['api.example.test'], ', ports: [443], tls: originate, credential: key'),
      'beta/b1.yaml': base['beta/b1.yaml'],
    };
    const values = (v: string): CredentialValues => new Map([['acme/key', { header: 'authorization', prefix: 'Bearer ', value: v }]]);
    cache.setPolicies(set(files), values('v1'));
    cache.watch(node('acme', 'agent-1'), () => undefined);
    cache.watch(node('beta', 'agent-1'), () => undefined);
    calls.length = 0;
    expect(cache.setCredentials(values('v1'))).toEqual({ changed: 0, unchanged: 2, failed: 0 });
    expect(calls).toEqual([]);
    expect(cache.setCredentials(values('v2'))).toEqual({ changed: 1, unchanged: 1, failed: 0 });
    expect(calls).toEqual(['acme/agent-1:15001']);
  });

  it('a new node of an unchanged agent is built at once, and revocation still bumps the drain epoch after skipped rebuilds', () => {
    const { cache, calls, drain } = world();
    const set = sets();
    cache.setPolicies(set(base));
    cache.watch(node('acme', 'agent-1'), () => undefined);
    cache.setPolicies(set(base)); // skipped
    const late = cache.watch(node('acme', 'agent-1', 15009), () => undefined);
    expect(late.current).toBeDefined();
    expect(calls).toEqual(['acme/agent-1:15001', 'acme/agent-1:15009']);
    expect(drain.get('acme/agent-1')!.epoch).toBe(0);
    cache.setPolicies(set({ ...base, 'acme/a1.yaml': policyText('acme', 'a1', ['agent-1'], ['one.example.test', 'more.example.test']) }));
    expect(drain.get('acme/agent-1')!.epoch).toBe(0); // adding access drains nothing
    cache.setPolicies(set(base)); // takes more.example.test away
    expect(drain.get('acme/agent-1')!.epoch).toBe(1);
    cache.setPolicies(set(base));
    expect(drain.get('acme/agent-1')!.epoch).toBe(1);
  });

  it('a failed build is retried with the next set even if its policies did not change', () => {
    let fail = true;
    const calls: string[] = [];
    const cache = new SnapshotCache({ guardAllow: [] }, silentLogger(), (ir, n, o, c) => {
      calls.push(ir.agent);
      const out = translate(ir, n, o, c);
      return fail ? { ...out, routes: out.routes.map((r) => ({ ...r, resource: { ...r.resource, no_such_field: 1 } })) } : out;
    });
    const set = sets();
    cache.setPolicies(set(base));
    const w = cache.watch(node('acme', 'agent-1'), () => undefined);
    expect(w.current).toBeUndefined();
    expect(cache.setPolicies(set(base))).toEqual({ changed: 0, unchanged: 0, failed: 1 });
    fail = false;
    expect(cache.setPolicies(set(base))).toEqual({ changed: 1, unchanged: 0, failed: 0 });
    expect(cache.setPolicies(set(base))).toEqual({ changed: 0, unchanged: 1, failed: 0 });
    expect(calls).toEqual(['agent-1', 'agent-1', 'agent-1']);
  });
});
