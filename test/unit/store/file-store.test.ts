/** The watched policy directory: live changes apply; invalid changes are refused and the last good set stays. */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FilePolicyStore } from '../../../src/store/file-store';
import type { PolicySet } from '../../../src/policy/documents';
import { formatPolicyError, type PolicyError } from '../../../src/policy/errors';

const doc = (name: string, host: string) => `apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: ${name}, tenant: acme }
spec:
  agents: ["*"]
  allow: [{ name: r, hosts: ["${host}"] }]
`;

const next = <T>(store: FilePolicyStore, event: 'policies' | 'invalid') => new Promise<T>((resolve) => store.once(event, resolve as never));

describe('FilePolicyStore', () => {
  let dir: string;
  let store: FilePolicyStore;
  beforeEach(async () => {
    dir = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-store-')), 'policies');
    await fs.mkdir(dir);
    await fs.writeFile(path.join(dir, 'a.yaml'), doc('a', 'a.example.test'));
    store = new FilePolicyStore(dir);
  });
  afterEach(() => store.stop());

  it('loads, then applies a new file, a changed file and a deleted file live', async () => {
    expect(await store.start()).toEqual({ ok: true });
    expect(store.current!.policies.map((p) => p.policy.metadata.name)).toEqual(['a']);

    let applied = next<PolicySet>(store, 'policies');
    await fs.writeFile(path.join(dir, 'b.yaml'), doc('b', 'b.example.test'));
    expect((await applied).policies.map((p) => p.policy.metadata.name)).toEqual(['a', 'b']);

    applied = next<PolicySet>(store, 'policies');
    await fs.writeFile(path.join(dir, 'b.yaml.tmp'), doc('b', 'c.example.test'));
    await fs.rename(path.join(dir, 'b.yaml.tmp'), path.join(dir, 'b.yaml'));
    expect((await applied).policies[1]!.policy.spec.allow[0]!.hosts).toEqual(['c.example.test']);

    applied = next<PolicySet>(store, 'policies');
    await fs.unlink(path.join(dir, 'b.yaml'));
    expect((await applied).policies.map((p) => p.policy.metadata.name)).toEqual(['a']);
  });

  it('refuses an invalid change with file, doc and path, and keeps the last good set', async () => {
    await store.start();
    const refused = next<PolicyError[]>(store, 'invalid');
    await fs.writeFile(path.join(dir, 'a.yaml'), doc('a', '*.*.example.test'));
    expect((await refused).map(formatPolicyError)).toEqual(['policies/a.yaml: doc 1: spec.allow[0].hosts[0]: "*.*.example.test" is not a valid host pattern']);
    expect(store.current!.policies[0]!.policy.spec.allow[0]!.hosts).toEqual(['a.example.test']);
  });

  it('fails to start on an invalid directory, naming every error', async () => {
    await fs.writeFile(path.join(dir, 'bad.yaml'), 'kind: Nope\n');
    const first = await store.start();
    expect(first.ok).toBe(false);
    expect(!first.ok && first.errors.map(formatPolicyError)).toEqual(['policies/bad.yaml: doc 1: kind: "Nope" is not a known kind (EgressPolicy, Credential)']);
    expect(store.current).toBeUndefined();
  });
});

describe('FilePolicyStore parse reuse', () => {
  let dir: string;
  let store: FilePolicyStore;
  beforeEach(async () => {
    dir = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-store-reuse-')), 'policies');
    await fs.mkdir(dir);
    for (const n of ['a', 'b', 'c']) await fs.writeFile(path.join(dir, `${n}.yaml`), doc(n, `${n}.example.test`));
    store = new FilePolicyStore(dir);
  });
  afterEach(() => store.stop());

  it('re-parses only the changed file, and keeps the other policies as the same objects', async () => {
    await store.start();
    const before = store.current!;
    expect(store.parseCache.stats).toEqual({ parsed: 3, reused: 0 });
    const applied = next<PolicySet>(store, 'policies');
    await fs.writeFile(path.join(dir, 'b.yaml'), doc('b', 'b2.example.test'));
    const after = await applied;
    expect(store.parseCache.stats.parsed).toBe(4);
    expect(after.policies[0]).toBe(before.policies[0]);
    expect(after.policies[2]).toBe(before.policies[2]);
    expect(after.policies[1]!.policy.spec.allow[0]!.hosts).toEqual(['b2.example.test']);
  });

  it('pushes nothing for an edit that changes no policy, and updates `current` alone when a policy moves', async () => {
    await store.start();
    let pushes = 0;
    store.on('policies', () => (pushes += 1));
    await fs.writeFile(path.join(dir, 'a.yaml'), `# a comment\n${doc('a', 'a.example.test')}`);
    expect(await store.applyNow()).toEqual({ ok: true });
    expect(pushes).toBe(0);
    // The same policy from another file: no push, but `current` names the new file.
    await fs.rename(path.join(dir, 'c.yaml'), path.join(dir, 'd.yaml'));
    expect(await store.applyNow()).toEqual({ ok: true });
    expect(pushes).toBe(0);
    expect(store.current!.policies.map((p) => p.source.file)).toEqual(['policies/a.yaml', 'policies/b.yaml', 'policies/d.yaml']);
    await store.applyNow();
    expect(store.parseCache.size).toBe(3); // c.yaml's entry is gone after two reloads without it
  });

  it('reports the same errors once, and a write through the API parses only the written file', async () => {
    await store.start();
    const invalid: PolicyError[][] = [];
    store.on('invalid', (e) => invalid.push(e));
    await fs.writeFile(path.join(dir, 'bad.yaml'), 'kind: Nope\n');
    await store.applyNow();
    await store.applyNow();
    expect(invalid).toHaveLength(1);
    await fs.unlink(path.join(dir, 'bad.yaml'));
    await store.applyNow();

    const parsed = store.parseCache.stats.parsed;
    const p = store.getPolicy('acme', 'a')!.policy;
    const r = await store.putPolicy({ ...p, metadata: { ...p.metadata, name: 'web' } });
    expect(r).toMatchObject({ ok: true, created: true, applied: true });
    // The rendered file is parsed once (to check it); reading the directory and the reload reuse every parse.
    expect(store.parseCache.stats.parsed).toBe(parsed + 1);
    expect(store.current!.policies.map((x) => x.policy.metadata.name)).toEqual(['a', 'web', 'b', 'c']);
  });
});
