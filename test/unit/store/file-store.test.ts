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
