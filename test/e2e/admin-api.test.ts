/**
 * The admin API end to end (SPEC §4, issue items 3 and 4), against an in-process control plane
 * with a real policy directory: tenant tokens on every route (401 / 403 / success), policies read,
 * written and deleted with revisions, 100 racing PUTs, invalid writes that change nothing (on disk,
 * in the store, in the snapshot cache a sidecar's stream watches), and tokens that never reach the log.
 */
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { startControlPlane, type RunningControlPlane } from '../../src/server/control-plane';
import { createLogger, silentLogger } from '../../src/util/logger';
import { parsePolicyText } from '../../src/policy/parse';
import { ROUTES } from '../../src/admin/routes';
import type { Snapshot } from '../../src/cache/snapshot';

const ADMIN = 'admin-token-0123456789abcdef';
const ACME = 'acme-token-0123456789abcdef';
const GLOBEX = 'globex-token-0123456789abcdef';
const ALL_TOKENS = [ADMIN, ACME, GLOBEX];

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

function request(port: number, method: string, urlPath: string, opts: { token?: string; body?: string | Buffer; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...(opts.headers ?? {}) };
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text === '' ? undefined : JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

const policyYaml = (tenant: string, name: string, hosts: string[], agents = ['*']) => `apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: ${name}, tenant: ${tenant} }
spec:
  agents: ${JSON.stringify(agents)}
  allow:
    - name: r
      hosts: ${JSON.stringify(hosts)}
`;

/** What the API returns for a policy written with policyYaml: the validated document, defaults filled in. */
const policyObject = (tenant: string, name: string, hosts: string[], agents = ['*']) => ({
  apiVersion: 'exitgate.dev/v1',
  kind: 'EgressPolicy',
  metadata: { name, tenant },
  spec: { agents, mode: 'enforce', allow: [{ name: 'r', hosts, ports: [443] }], deny: [] },
});

const HAND_WRITTEN = `apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: legacy, tenant: acme }
spec:
  agents: ["*"]
  allow: [{ name: r, hosts: ["legacy.example.test"] }]
---
apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: legacy, tenant: globex }
spec:
  agents: ["*"]
  allow: [{ name: r, hosts: ["legacy.globex.test"] }]
`;

const YAML_CT = { 'content-type': 'application/yaml' };

describe('admin API with tenant tokens', () => {
  let dir: string;
  let policiesDir: string;
  let cp: RunningControlPlane;
  let port: number;
  const logLines: string[] = [];
  const put = (tenant: string, name: string, body: string, token = ADMIN, headers: Record<string, string> = {}) =>
    request(port, 'PUT', `/v1/tenants/${tenant}/policies/${name}`, { token, body, headers: { ...YAML_CT, ...headers } });
  const get = (urlPath: string, token = ADMIN, headers: Record<string, string> = {}) => request(port, 'GET', urlPath, { token, headers });
  const managedFile = (tenant: string, name: string) => path.join(policiesDir, tenant, `${name}.yaml`);
  const listDirTree = async (): Promise<string[]> => {
    const out: string[] = [];
    const walk = async (d: string) => {
      for (const e of await fs.readdir(d, { withFileTypes: true })) {
        const full = path.join(d, e.name);
        if (e.isDirectory()) await walk(full);
        else out.push(path.relative(policiesDir, full));
      }
    };
    await walk(policiesDir);
    return out.sort();
  };

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-admin-'));
    policiesDir = path.join(dir, 'policies');
    await fs.mkdir(policiesDir);
    await fs.writeFile(path.join(policiesDir, 'hand.yaml'), HAND_WRITTEN);
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        logLines.push(chunk.toString('utf8'));
        cb();
      },
    });
    cp = await startControlPlane({
      policiesDir,
      xdsListen: { host: '127.0.0.1', port: 0 },
      adminListen: { host: '127.0.0.1', port: 0 },
      guardAllow: [],
      // Everything, down to the per-request debug lines, so that the test can look for tokens in it.
      log: createLogger({ level: 'trace', destination: sink }),
      adminTokens: { admin: [ADMIN], tenants: { acme: [ACME], globex: [GLOBEX] } },
    });
    port = cp.adminPort;
  });

  afterAll(async () => {
    await cp?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  describe('every route: no token 401, another tenant 403, the right token succeeds', () => {
    type Case = { route: string; method: string; path: string; body?: string; setup?: () => Promise<void>; other: string | null; right: string[]; ok: number };
    const ensure = async (name: string) => {
      const r = await put('acme', name, policyYaml('acme', name, [`${name}.example.test`]));
      expect([200, 201]).toContain(r.status);
    };
    const cases: Case[] = [
      { route: 'metrics', method: 'GET', path: '/metrics', other: ACME, right: [ADMIN], ok: 200 },
      { route: 'nodes', method: 'GET', path: '/v1/nodes', other: null, right: [ADMIN, ACME, GLOBEX], ok: 200 },
      { route: 'policies', method: 'GET', path: '/v1/tenants/acme/policies', other: GLOBEX, right: [ADMIN, ACME], ok: 200 },
      { route: 'policy', method: 'GET', path: '/v1/tenants/acme/policies/matrix', setup: () => ensure('matrix'), other: GLOBEX, right: [ADMIN, ACME], ok: 200 },
      { route: 'policy', method: 'PUT', path: '/v1/tenants/acme/policies/matrix', body: policyYaml('acme', 'matrix', ['m.example.test']), other: GLOBEX, right: [ADMIN, ACME], ok: 200 },
      { route: 'policy', method: 'DELETE', path: '/v1/tenants/acme/policies/matrix', setup: () => ensure('matrix'), other: GLOBEX, right: [ADMIN, ACME], ok: 204 },
      { route: 'effective', method: 'GET', path: '/v1/tenants/acme/agents/coder/effective', other: GLOBEX, right: [ADMIN, ACME], ok: 200 },
      // Any token; a tenant token is confined to its tenant by the handler (403 for another's).
      { route: 'decisions', method: 'GET', path: '/v1/decisions?tenant=acme', other: GLOBEX, right: [ADMIN, ACME], ok: 200 },
      // The stream never ends by itself: a malformed `since` makes an authorized request end at
      // once, with the handler's 400, past authentication and authorization.
      { route: 'decisions-stream', method: 'GET', path: '/v1/decisions/stream?tenant=acme&since=x', other: GLOBEX, right: [ADMIN, ACME], ok: 400 },
      // The same routes of the other tenant, with the roles swapped.
      { route: 'policies', method: 'GET', path: '/v1/tenants/globex/policies', other: ACME, right: [ADMIN, GLOBEX], ok: 200 },
      { route: 'policy', method: 'GET', path: '/v1/tenants/globex/policies/legacy', other: ACME, right: [ADMIN, GLOBEX], ok: 200 },
      { route: 'effective', method: 'GET', path: '/v1/tenants/globex/agents/coder/effective', other: ACME, right: [ADMIN, GLOBEX], ok: 200 },
    ];

    it('covers every authenticated route of the route table', () => {
      const covered = new Set(cases.map((c) => `${c.route} ${c.method}`));
      for (const r of ROUTES) {
        if (r.name === 'healthz' || r.name === 'readyz') continue;
        for (const m of r.methods) expect(covered).toContain(`${r.name} ${m}`);
      }
    });

    it.each(cases)('$method $path', async (c) => {
      await c.setup?.();
      const before = await listDirTree();
      const send = (token?: string, headers: Record<string, string> = {}) =>
        request(port, c.method, c.path, { ...(token ? { token } : {}), ...(c.body ? { body: c.body } : {}), headers: c.body ? { ...YAML_CT, ...headers } : headers });

      const none = await send();
      expect(none.status).toBe(401);
      expect(none.headers['www-authenticate']).toMatch(/^Bearer realm="exitgate"$/);
      expect(none.json).toEqual({ error: expect.stringContaining('needs a token') });

      const wrong = await send('not-a-configured-token-0123456789');
      expect(wrong.status).toBe(401);
      expect(wrong.headers['www-authenticate']).toContain('error="invalid_token"');
      const malformed = await send(undefined, { authorization: `Basic ${Buffer.from(`x:${ADMIN}`).toString('base64')}` });
      expect(malformed.status).toBe(401);

      if (c.other) {
        const other = await send(c.other);
        expect(other.status).toBe(403);
        expect(other.json.error).toMatch(/admin token|not allowed to access tenant/);
      }
      // Refused requests changed nothing on disk.
      expect(await listDirTree()).toEqual(before);

      for (const token of c.right) {
        await c.setup?.();
        const ok = await send(token);
        expect(ok.status).toBe(c.ok);
      }
    });

    it('health and readiness need no token', async () => {
      expect((await request(port, 'GET', '/healthz')).status).toBe(200);
      expect((await request(port, 'GET', '/readyz')).status).toBe(200);
    });

    it('an unknown route needs a token before it is a 404; a wrong method is 405', async () => {
      expect((await request(port, 'GET', '/v1/nope')).status).toBe(401);
      expect((await get('/v1/nope')).status).toBe(404);
      const r = await request(port, 'POST', '/v1/tenants/acme/policies/x', { token: ACME });
      expect(r.status).toBe(405);
      expect(r.headers.allow).toBe('GET, PUT, DELETE');
    });

    it('a tenant token sees only its own nodes; the admin token sees all', async () => {
      cp.registry.open('acme/coder/1', 'acme', 'coder');
      cp.registry.open('globex/coder/1', 'globex', 'coder');
      const nodesOf = async (token: string) => ((await get('/v1/nodes', token)).json as Array<{ node: string }>).map((n) => n.node).sort();
      expect(await nodesOf(ADMIN)).toEqual(['acme/coder/1', 'globex/coder/1']);
      expect(await nodesOf(ACME)).toEqual(['acme/coder/1']);
      expect(await nodesOf(GLOBEX)).toEqual(['globex/coder/1']);
    });

    it('a tenant cannot write another tenant\'s policy by naming that tenant in the body', async () => {
      const r = await put('acme', 'sneaky', policyYaml('globex', 'sneaky', ['x.example.test']), ACME);
      expect(r.status).toBe(400);
      expect(r.json.errors).toEqual(['policies/acme/sneaky.yaml: doc 1: metadata.tenant: "globex" does not match the tenant in the URL ("acme")']);
      await expect(fs.stat(managedFile('globex', 'sneaky'))).rejects.toThrow();
      await expect(fs.stat(managedFile('acme', 'sneaky'))).rejects.toThrow();
    });
  });

  describe('policies: read, write, delete, revisions', () => {
    it('PUT creates (201), GET returns the policy and the same ETag, the file holds it', async () => {
      const body = policyYaml('acme', 'web', ['api.example.test']);
      const created = await put('acme', 'web', body, ACME);
      expect(created.status).toBe(201);
      expect(created.headers.etag).toMatch(/^"sha256-[A-Za-z0-9_-]{43}"$/);
      expect(created.headers.location).toBe('/v1/tenants/acme/policies/web');
      expect(created.json).toEqual(policyObject('acme', 'web', ['api.example.test']));

      const read = await get('/v1/tenants/acme/policies/web', ACME);
      expect(read.status).toBe(200);
      expect(read.headers.etag).toBe(created.headers.etag);
      expect(read.json).toEqual(policyObject('acme', 'web', ['api.example.test']));

      const onDisk = parsePolicyText('f', await fs.readFile(managedFile('acme', 'web'), 'utf8'));
      expect(onDisk.errors).toEqual([]);
      expect(onDisk.policies.map((p) => p.policy)).toEqual([read.json]);

      // Conditional GET, YAML on request, and the listing.
      expect((await get('/v1/tenants/acme/policies/web', ACME, { 'if-none-match': created.headers.etag! })).status).toBe(304);
      const yaml = await get('/v1/tenants/acme/policies/web', ACME, { accept: 'application/yaml' });
      expect(yaml.headers['content-type']).toBe('application/yaml');
      expect(parsePolicyText('f', yaml.text).policies[0]!.policy).toEqual(read.json);
      const list = await get('/v1/tenants/acme/policies', ACME);
      expect(list.json.policies).toEqual(
        expect.arrayContaining([
          { name: 'web', etag: created.headers.etag, agents: ['*'], file: 'policies/acme/web.yaml', doc: 1, managed: true },
          { name: 'legacy', etag: expect.any(String), agents: ['*'], file: 'policies/hand.yaml', doc: 1, managed: false },
        ]),
      );
      expect(list.json.policies.map((p: { name: string }) => p.name)).not.toContain('sneaky');
    });

    it('PUT with JSON; PUT of the same content keeps the revision; a stale If-Match is 409 with the current ETag', async () => {
      const first = await put('acme', 'json', JSON.stringify(policyObject('acme', 'json', ['a.example.test'])), ACME, { 'content-type': 'application/json' });
      expect(first.status).toBe(201);
      const v1 = first.headers.etag!;
      const same = await put('acme', 'json', policyYaml('acme', 'json', ['a.example.test']), ACME, { 'if-match': v1 });
      expect(same.status).toBe(200);
      expect(same.headers.etag).toBe(v1);

      const second = await put('acme', 'json', policyYaml('acme', 'json', ['b.example.test']), ACME, { 'if-match': v1 });
      expect(second.status).toBe(200);
      const v2 = second.headers.etag!;
      expect(v2).not.toBe(v1);

      const stale = await put('acme', 'json', policyYaml('acme', 'json', ['c.example.test']), ACME, { 'if-match': v1 });
      expect(stale.status).toBe(409);
      expect(stale.json).toEqual({ error: expect.stringContaining('has changed'), currentEtag: v2 });
      expect((await get('/v1/tenants/acme/policies/json', ACME)).json.spec.allow[0].hosts).toEqual(['b.example.test']);

      expect((await put('acme', 'json', policyYaml('acme', 'json', ['c.example.test']), ACME, { 'if-none-match': '*' })).status).toBe(409);
      expect((await put('acme', 'fresh', policyYaml('acme', 'fresh', ['c.example.test']), ACME, { 'if-none-match': '*' })).status).toBe(201);
      expect((await put('acme', 'absent', policyYaml('acme', 'absent', ['c.example.test']), ACME, { 'if-match': v2 })).status).toBe(409);
      expect((await put('acme', 'json', policyYaml('acme', 'json', ['c.example.test']), ACME, { 'if-match': 'sha256-unquoted' })).status).toBe(400);
    });

    it('100 concurrent PUTs with the same If-Match: exactly one succeeds, 99 get 409, the file is the winner\'s complete version', async () => {
      const created = await put('acme', 'race', policyYaml('acme', 'race', ['v0.example.test']), ACME);
      expect(created.status).toBe(201);
      const etag = created.headers.etag!;
      const replies = await Promise.all(
        Array.from({ length: 100 }, (_, i) => put('acme', 'race', policyYaml('acme', 'race', [`h${i}.example.test`]), i % 2 ? ACME : ADMIN, { 'if-match': etag })),
      );
      const statuses = replies.map((r) => r.status);
      expect(statuses.filter((s) => s === 200)).toHaveLength(1);
      expect(statuses.filter((s) => s === 409)).toHaveLength(99);
      const winner = replies.find((r) => r.status === 200)!;
      for (const loser of replies.filter((r) => r.status === 409)) expect(loser.json.currentEtag).toBe(winner.headers.etag);

      const text = await fs.readFile(managedFile('acme', 'race'), 'utf8');
      const onDisk = parsePolicyText('policies/acme/race.yaml', text);
      expect(onDisk.errors).toEqual([]);
      expect(onDisk.credentials).toEqual([]);
      expect(onDisk.policies.map((p) => p.policy)).toEqual([winner.json]);
      const read = await get('/v1/tenants/acme/policies/race', ACME);
      expect(read.headers.etag).toBe(winner.headers.etag);
      expect(read.json).toEqual(winner.json);
      // No temporary file is left behind.
      expect((await listDirTree()).filter((f) => f.includes('exitgate-tmp'))).toEqual([]);
    });

    it('an invalid PUT is 400 with the CLI\'s messages and changes nothing: disk, revision, store, the snapshot a sidecar watches', async () => {
      const created = await put('acme', 'guarded', policyYaml('acme', 'guarded', ['ok.example.test'], ['coder']), ACME);
      expect(created.status).toBe(201);
      const fileBefore = await fs.readFile(managedFile('acme', 'guarded'), 'utf8');
      const treeBefore = await listDirTree();
      const setBefore = cp.store.current;
      const pushed: Snapshot[] = [];
      const watch = cp.cache.watch({ tenant: 'acme', agent: 'coder', listen: { address: '127.0.0.1', port: 15001 } }, (s) => pushed.push(s));
      const snapshotBefore = watch.current;
      try {
        const invalid: Array<[string, string, string[]]> = [
          ['bad host', policyYaml('acme', 'guarded', ['*.*.x.test'], ['coder']), ['policies/acme/guarded.yaml: doc 1: spec.allow[0].hosts[0]: "*.*.x.test" is not a valid host pattern']],
          [
            'unknown field',
            policyYaml('acme', 'guarded', ['ok.example.test'], ['coder']).replace('  allow:', '  alow: []\n  allow:'),
            ['policies/acme/guarded.yaml: doc 1: spec.alow: unknown field'],
          ],
          [
            'duplicate rule names (a cross-document check)',
            policyYaml('acme', 'guarded', ['ok.example.test'], ['coder']) + '    - name: r\n      hosts: ["two.example.test"]\n',
            ['policies/acme/guarded.yaml: doc 1: spec.allow[1].name: rule name "r" is already used by spec.allow[0].name'],
          ],
          ['name mismatch', policyYaml('acme', 'other', ['ok.example.test']), ['policies/acme/guarded.yaml: doc 1: metadata.name: "other" does not match the policy name in the URL ("guarded")']],
          [
            'two documents',
            `${policyYaml('acme', 'guarded', ['ok.example.test'])}---\n${policyYaml('acme', 'guarded', ['ok.example.test'])}`,
            ['policies/acme/guarded.yaml: doc 2: the body must hold exactly one EgressPolicy document'],
          ],
          ['empty', '', ['policies/acme/guarded.yaml: the body holds no EgressPolicy document']],
          ['not YAML', 'spec: [unclosed', [expect.stringMatching(/^policies\/acme\/guarded\.yaml: doc 1: invalid YAML: /) as unknown as string]],
        ];
        for (const [what, body, errors] of invalid) {
          const r = await put('acme', 'guarded', body, ACME, { 'if-match': created.headers.etag! });
          expect({ what, status: r.status, errors: r.json?.errors }).toEqual({ what, status: 400, errors });
        }
        const badJson = await put('acme', 'guarded', '{"apiVersion": ', ACME, { 'content-type': 'application/json' });
        expect(badJson.status).toBe(400);
        expect(badJson.json.errors[0]).toMatch(/^policies\/acme\/guarded\.yaml: doc 1: invalid JSON: /);
        expect((await put('acme', 'guarded', policyYaml('acme', 'guarded', ['ok.example.test']), ACME, { 'content-type': 'application/xml' })).status).toBe(415);
        const huge = await put('acme', 'guarded', `# ${'x'.repeat(1024 * 1024)}\n`, ACME);
        expect(huge.status).toBe(413);

        expect(await fs.readFile(managedFile('acme', 'guarded'), 'utf8')).toBe(fileBefore);
        expect(await listDirTree()).toEqual(treeBefore);
        expect((await get('/v1/tenants/acme/policies/guarded', ACME)).headers.etag).toBe(created.headers.etag);
        // Give the directory watcher time to react, had anything been written.
        await new Promise((r) => setTimeout(r, 100));
        expect(cp.store.current).toBe(setBefore);
        expect(pushed).toEqual([]);
        expect(watch.current).toBe(snapshotBefore);
      } finally {
        watch.cancel();
      }
    });

    it('a policy in a hand-written file is readable but not writable through the API (409), and its file is left alone', async () => {
      const read = await get('/v1/tenants/acme/policies/legacy', ACME);
      expect(read.status).toBe(200);
      const r = await put('acme', 'legacy', policyYaml('acme', 'legacy', ['new.example.test']), ACME, { 'if-match': read.headers.etag! });
      expect(r.status).toBe(409);
      expect(r.json.error).toBe(
        'policy acme/legacy is defined in policies/hand.yaml (doc 1), a file the admin API does not manage; change it there, or move it out of that file and write it through the API (it would live in policies/acme/legacy.yaml)',
      );
      const d = await request(port, 'DELETE', '/v1/tenants/acme/policies/legacy', { token: ACME });
      expect(d.status).toBe(409);
      expect(await fs.readFile(path.join(policiesDir, 'hand.yaml'), 'utf8')).toBe(HAND_WRITTEN);
      await expect(fs.stat(managedFile('acme', 'legacy'))).rejects.toThrow();
    });

    it('DELETE honours If-Match; the policy is gone from disk and from the effective policy when it answers', async () => {
      const created = await put('acme', 'doomed', policyYaml('acme', 'doomed', ['doomed.example.test'], ['reaper']), ACME);
      expect(created.status).toBe(201);
      expect((await get('/v1/tenants/acme/agents/reaper/effective', ACME)).json.policies).toContain('doomed');
      const stale = await request(port, 'DELETE', '/v1/tenants/acme/policies/doomed', { token: ACME, headers: { 'if-match': '"sha256-stale"' } });
      expect(stale.status).toBe(409);
      expect(stale.json.currentEtag).toBe(created.headers.etag);
      const ok = await request(port, 'DELETE', '/v1/tenants/acme/policies/doomed', { token: ACME, headers: { 'if-match': created.headers.etag! } });
      expect(ok.status).toBe(204);
      await expect(fs.stat(managedFile('acme', 'doomed'))).rejects.toThrow();
      expect((await get('/v1/tenants/acme/policies/doomed', ACME)).status).toBe(404);
      expect((await get('/v1/tenants/acme/agents/reaper/effective', ACME)).json.policies).not.toContain('doomed');
      expect((await request(port, 'DELETE', '/v1/tenants/acme/policies/doomed', { token: ACME })).status).toBe(404);
    });

    it('the effective policy of an agent, and the snapshot its sidecar watches, reflect a PUT as soon as it answers', async () => {
      const pushed: Snapshot[] = [];
      const watch = cp.cache.watch({ tenant: 'globex', agent: 'mailer', listen: { address: '127.0.0.1', port: 15001 } }, (s) => pushed.push(s));
      try {
        const before = await get('/v1/tenants/globex/agents/mailer/effective', GLOBEX);
        expect(before.json.allow.map((a: { host: string }) => a.host)).toEqual(['legacy.globex.test']);
        const r = await put('globex', 'mail', policyYaml('globex', 'mail', ['smtp.example.test'], ['mailer']), GLOBEX);
        expect(r.status).toBe(201);
        // No waiting: the PUT answered after the store applied the new set.
        expect(pushed).toHaveLength(1);
        const after = await get('/v1/tenants/globex/agents/mailer/effective', GLOBEX);
        expect(after.json.policies).toEqual(['legacy', 'mail']);
        expect(after.json.allow).toEqual(expect.arrayContaining([{ policy: 'mail', rule: 'r', host: 'smtp.example.test', ports: [443] }]));
      } finally {
        watch.cancel();
      }
    });
  });

  it('never logs a token', async () => {
    expect(logLines.length).toBeGreaterThan(100);
    expect(logLines.some((l) => l.includes('"msg":"admin request"'))).toBe(true);
    for (const token of ALL_TOKENS) expect(logLines.filter((l) => l.includes(token))).toEqual([]);
  });
});

describe('admin API without tokens', () => {
  let dir: string;
  let cp: RunningControlPlane;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-admin-open-'));
    await fs.mkdir(path.join(dir, 'policies'));
    cp = await startControlPlane({
      policiesDir: path.join(dir, 'policies'),
      xdsListen: { host: '127.0.0.1', port: 0 },
      adminListen: { host: '127.0.0.1', port: 0 },
      guardAllow: [],
      log: silentLogger(),
    });
  });
  afterAll(async () => {
    await cp?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('serves loopback clients without a token, and refuses a request for another Host (DNS rebinding)', async () => {
    expect((await request(cp.adminPort, 'GET', '/v1/nodes')).status).toBe(200);
    const created = await request(cp.adminPort, 'PUT', '/v1/tenants/acme/policies/web', { body: policyYaml('acme', 'web', ['a.example.test']), headers: YAML_CT });
    expect(created.status).toBe(201);
    const rebound = await request(cp.adminPort, 'DELETE', '/v1/tenants/acme/policies/web', { headers: { host: 'attacker.example.test:18001' } });
    expect(rebound.status).toBe(403);
    expect((await request(cp.adminPort, 'GET', '/v1/tenants/acme/policies/web', { headers: { host: 'localhost' } })).status).toBe(200);
  });
});
