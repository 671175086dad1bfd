/**
 * An admin write applies the set it validated (the directory as read under the write lock, with its
 * own file replaced) without reading the directory again, unless someone else changed the directory
 * in between; and the watcher's scheduling: a rename reloads at once, an in-place write after the
 * directory went quiet, and names no reload reads are ignored.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as load from '../../../src/policy/load';
import * as writes from '../../../src/store/policy-writes';
import { FilePolicyStore } from '../../../src/store/file-store';
import { ParseCache } from '../../../src/policy/parse-cache';
import type { PolicySet } from '../../../src/policy/documents';

const doc = (name: string, host: string) => `apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: ${name}, tenant: acme }
spec:
  agents: ["*"]
  allow: [{ name: r, hosts: ["${host}"] }]
`;

describe('FilePolicyStore admin writes', () => {
  let dir: string;
  let store: FilePolicyStore;
  beforeEach(async () => {
    dir = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-write-apply-')), 'policies');
    await fs.mkdir(path.join(dir, 'acme'), { recursive: true });
    await fs.writeFile(path.join(dir, 'a.yaml'), doc('a', 'a.example.test'));
    await fs.writeFile(path.join(dir, 'z.yaml'), doc('z', 'z.example.test'));
    store = new FilePolicyStore(dir);
    expect(await store.start()).toEqual({ ok: true });
    store.stop(); // no watcher: only the writes below touch the store
  });
  afterEach(() => {
    store.stop();
    jest.restoreAllMocks();
  });

  it('applies the validated set without reading the directory again, in the order a reload reads it', async () => {
    const listings = jest.spyOn(load, 'listPolicyFiles');
    const sets: PolicySet[] = [];
    store.on('policies', (s) => sets.push(s));
    const p = store.getPolicy('acme', 'a')!.policy;
    const r = await store.putPolicy({ ...p, metadata: { ...p.metadata, name: 'web' } });
    expect(r).toMatchObject({ ok: true, created: true, applied: true });
    expect(listings).toHaveBeenCalledTimes(1); // the read under the write lock, no reload
    expect(sets).toHaveLength(1);
    expect(store.applyTiming).toEqual({ via: 'admin-write', readMs: expect.any(Number), writeMs: expect.any(Number) });
    const written = store.current!;
    expect(written.policies.map((x) => x.source.file)).toEqual(['policies/a.yaml', 'policies/acme/web.yaml', 'policies/z.yaml']);

    // A reload of the directory finds exactly that set: nothing to push.
    listings.mockRestore();
    expect(await store.applyNow()).toEqual({ ok: true });
    expect(sets).toHaveLength(1);
    expect(store.current!.policies.map((x) => x.policy)).toEqual(written.policies.map((x) => x.policy));

    const d = await store.deletePolicy('acme', 'web');
    expect(d).toMatchObject({ ok: true, applied: true });
    expect(store.current!.policies.map((x) => x.policy.metadata.name)).toEqual(['a', 'z']);
    expect(sets).toHaveLength(2);
  });

  it('records where the time of a watched change went', async () => {
    const applied = new Promise<void>((resolve) => store.once('policies', () => resolve()));
    await fs.writeFile(path.join(dir, 'b.yaml'), doc('b', 'b.example.test'));
    (store as unknown as { onWatchEvent(e: string, f: string): void }).onWatchEvent('rename', 'b.yaml');
    await applied;
    expect(store.applyTiming).toEqual({ via: 'watch', waitMs: expect.any(Number), readMs: expect.any(Number) });
  });

  it('reads the directory again when a reload began between its read and its write', async () => {
    const read = writes.readPolicyDir;
    jest.spyOn(writes, 'readPolicyDir').mockImplementationOnce(async (...args) => {
      const files = await read(...args);
      // Someone edits a file by hand after the write read the directory, and a reload runs.
      await fs.writeFile(path.join(dir, 'z.yaml'), doc('z', 'z2.example.test'));
      await store.applyNow();
      return files;
    });
    const p = store.getPolicy('acme', 'a')!.policy;
    const r = await store.putPolicy({ ...p, metadata: { ...p.metadata, name: 'web' } });
    expect(r).toMatchObject({ ok: true, applied: true });
    const hosts = Object.fromEntries(store.current!.policies.map((x) => [x.policy.metadata.name, x.policy.spec.allow[0]!.hosts]));
    expect(hosts).toEqual({ a: ['a.example.test'], web: ['a.example.test'], z: ['z2.example.test'] });
  });
});

describe('FilePolicyStore watch scheduling', () => {
  let store: FilePolicyStore;
  let reloads: jest.SpyInstance;
  type Internals = { onWatchEvent(event: string, file: string | null): void };
  const event = (e: string, f: string | null) => (store as unknown as Internals).onWatchEvent(e, f);
  beforeEach(() => {
    jest.useFakeTimers();
    store = new FilePolicyStore('/nonexistent');
    reloads = jest.spyOn(store, 'applyNow').mockResolvedValue({ ok: true });
  });
  afterEach(() => {
    store.stop();
    jest.useRealTimers();
  });

  it('reloads right after a rename (a complete file moved into place), coalescing one burst', () => {
    event('rename', 'web.yaml');
    event('rename', 'web.yaml');
    jest.advanceTimersByTime(2);
    expect(reloads).toHaveBeenCalledTimes(1);
  });

  it('waits for an in-place write to go quiet, also when a rename follows it', () => {
    event('change', 'web.yaml');
    jest.advanceTimersByTime(10);
    event('rename', 'web.yaml');
    jest.advanceTimersByTime(10);
    expect(reloads).not.toHaveBeenCalled();
    jest.advanceTimersByTime(10);
    expect(reloads).toHaveBeenCalledTimes(1);
  });

  it('ignores dot-files and dot-directories (temporary and swap files), not a name it cannot see', () => {
    event('change', '.web.yaml.123.exitgate-tmp');
    event('rename', path.join('acme', '.web.yaml.swp'));
    event('change', path.join('.git', 'index'));
    jest.advanceTimersByTime(50);
    expect(reloads).not.toHaveBeenCalled();
    event('rename', null);
    jest.advanceTimersByTime(2);
    expect(reloads).toHaveBeenCalledTimes(1);
  });
});

describe('ParseCache.hold', () => {
  it('keeps a held entry through listings without its file, and drops it after release as usual', () => {
    const cache = new ParseCache();
    const release = cache.hold('policies/acme/web.yaml');
    cache.parse('policies/acme/web.yaml', doc('web', 'w.example.test'));
    cache.retainOnly([]);
    cache.retainOnly([]);
    cache.retainOnly([]);
    cache.parse('policies/acme/web.yaml', doc('web', 'w.example.test'));
    expect(cache.stats).toEqual({ parsed: 1, reused: 1 });
    release();
    cache.retainOnly([]);
    cache.retainOnly([]);
    expect(cache.size).toBe(0);
  });
});
