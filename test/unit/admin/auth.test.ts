/** Admin API auth: constant-time token comparison, token sources, and the route authorization matrix. */
// The module object itself (not an ES namespace copy), so that a spy on it is what auth.ts calls.
import crypto = require('node:crypto');
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { authorize, constantTimeEqual, TokenAuthenticator, type Principal } from '../../../src/admin/auth';
import { matchRoute, ROUTES } from '../../../src/admin/routes';
import { mergeTokens, tokensFromEnv, type TokenConfig } from '../../../src/config/tokens';
import { parseConfigText, loadConfigFile } from '../../../src/config/config-file';
import { resolveAdminTokens } from '../../../src/config/admin-tokens';

const ADMIN = 'admin-token-0123456789abcdef';
const ACME = 'acme-token-0123456789abcdef';
const GLOBEX = 'globex-token-0123456789abcdef';
const tokens: TokenConfig = { admin: [ADMIN], tenants: { acme: [ACME], globex: [GLOBEX] } };

afterEach(() => jest.restoreAllMocks());

describe('constant-time comparison', () => {
  it('compares SHA-256 digests with timingSafeEqual, so the lengths never differ', () => {
    const spy = jest.spyOn(crypto, 'timingSafeEqual');
    expect(constantTimeEqual('abc', 'abc')).toBe(true);
    expect(constantTimeEqual('abc', 'abd')).toBe(false);
    expect(constantTimeEqual('short', 'a much longer secret value')).toBe(false);
    expect(constantTimeEqual('', 'x')).toBe(false);
    expect(spy).toHaveBeenCalledTimes(4);
    for (const [a, b] of spy.mock.calls) {
      expect((a as Buffer).length).toBe(32);
      expect((b as Buffer).length).toBe(32);
    }
  });

  it('checks a presented token against every configured token, with no early exit', () => {
    const auth = new TokenAuthenticator(tokens);
    const spy = jest.spyOn(crypto, 'timingSafeEqual');
    expect(auth.authenticate(`Bearer ${ADMIN}`)).toEqual({ ok: true, principal: { kind: 'admin' } }); // the first entry
    expect(spy).toHaveBeenCalledTimes(3);
    spy.mockClear();
    expect(auth.authenticate('Bearer nope-nope-nope-nope-nope')).toEqual({ ok: false, reason: 'invalid' });
    expect(spy).toHaveBeenCalledTimes(3);
  });
});

describe('TokenAuthenticator', () => {
  const auth = new TokenAuthenticator(tokens);
  it.each<[string | undefined, ReturnType<TokenAuthenticator['authenticate']>]>([
    [`Bearer ${ADMIN}`, { ok: true, principal: { kind: 'admin' } }],
    [`bearer ${ACME}`, { ok: true, principal: { kind: 'tenant', tenant: 'acme' } }],
    [`Bearer  ${GLOBEX} `, { ok: true, principal: { kind: 'tenant', tenant: 'globex' } }],
    [undefined, { ok: false, reason: 'missing' }],
    ['', { ok: false, reason: 'missing' }],
    [ADMIN, { ok: false, reason: 'malformed' }],
    [`Basic ${ADMIN}`, { ok: false, reason: 'malformed' }],
    [`Bearer ${ADMIN} extra`, { ok: false, reason: 'malformed' }],
    [`Bearer ${ADMIN}x`, { ok: false, reason: 'invalid' }],
    [`Bearer ${ADMIN.slice(0, -1)}`, { ok: false, reason: 'invalid' }],
  ])('%s', (header, expected) => {
    expect(auth.authenticate(header)).toEqual(expected);
  });

  it('is disabled with no tokens (loopback-only mode)', () => {
    expect(TokenAuthenticator.from(undefined).enabled).toBe(false);
    expect(TokenAuthenticator.from({ admin: [], tenants: { acme: [] } }).enabled).toBe(false);
    expect(TokenAuthenticator.from(tokens).enabled).toBe(true);
    expect(TokenAuthenticator.from({ admin: [], tenants: {} }).authenticate(`Bearer ${ADMIN}`)).toEqual({ ok: false, reason: 'invalid' });
  });

  it('keeps no token string', () => {
    expect(JSON.stringify(auth)).not.toContain(ADMIN);
    expect(JSON.stringify(auth)).not.toContain(ACME);
  });
});

describe('route authorization matrix', () => {
  const admin: Principal = { kind: 'admin' };
  const acme: Principal = { kind: 'tenant', tenant: 'acme' };
  const globex: Principal = { kind: 'tenant', tenant: 'globex' };
  // Route -> [admin, acme, globex] for a path of tenant acme.
  const matrix: Array<[string, boolean, boolean, boolean]> = [
    ['/healthz', true, true, true],
    ['/readyz', true, true, true],
    ['/metrics', true, false, false],
    ['/v1/nodes', true, true, true], // filtered to the tenant's nodes by the handler
    ['/v1/tenants/acme/policies', true, true, false],
    ['/v1/tenants/acme/policies/web', true, true, false],
    ['/v1/tenants/acme/agents/coder/effective', true, true, false],
    ['/v1/decisions', true, true, true], // filtered to the tenant's decisions by the handler
    ['/v1/decisions/stream', true, true, true], // likewise
  ];

  it('has a row for every route', () => {
    expect(matrix.map(([p]) => matchRoute(p)!.route.name).sort()).toEqual(ROUTES.map((r) => r.name).sort());
  });

  it.each(matrix)('%s', (p, forAdmin, forAcme, forGlobex) => {
    const m = matchRoute(p)!;
    expect(authorize(admin, m.scope).ok).toBe(forAdmin);
    expect(authorize(acme, m.scope).ok).toBe(forAcme);
    expect(authorize(globex, m.scope).ok).toBe(forGlobex);
  });

  it('names the reason', () => {
    expect(authorize(acme, matchRoute('/metrics')!.scope)).toEqual({ ok: false, reason: 'this route needs an admin token' });
    expect(authorize(globex, matchRoute('/v1/tenants/acme/policies')!.scope)).toEqual({ ok: false, reason: 'this token is not allowed to access tenant "acme"' });
  });

  it('matches only DNS-label tenants and names (no traversal, no encoding tricks)', () => {
    for (const p of ['/v1/tenants/../policies/x', '/v1/tenants/acme/policies/..', '/v1/tenants/ACME/policies/x', '/v1/tenants/acme/policies/a%2fb', '/v1/tenants/acme/policies/x/', '/v1/tenants/-a/policies/x']) {
      expect(matchRoute(p)).toBeUndefined();
    }
  });
});

describe('tokens from the environment', () => {
  it('reads admin and tenant tokens', () => {
    expect(tokensFromEnv({ EXITGATE_ADMIN_TOKENS: ` ${ADMIN} ,${ADMIN}2`, EXITGATE_TENANT_TOKENS: `acme:${ACME},globex:${GLOBEX},acme:${ACME}x,` })).toEqual({
      ok: true,
      value: { admin: [ADMIN, `${ADMIN}2`], tenants: { acme: [ACME, `${ACME}x`], globex: [GLOBEX] } },
    });
    expect(tokensFromEnv({})).toEqual({ ok: true, value: { admin: [], tenants: {} } });
  });

  it('names the variable and the entry of a bad token, never the token', () => {
    const r = tokensFromEnv({ EXITGATE_ADMIN_TOKENS: `${ADMIN},short-secret`, EXITGATE_TENANT_TOKENS: `acme:${ACME},${GLOBEX},ACME:${ACME}y,globex:has space in-the-token` });
    expect(r).toEqual({
      ok: false,
      errors: [
        'EXITGATE_ADMIN_TOKENS: entry 2: a token must be at least 16 characters long (e.g. `openssl rand -hex 32`)',
        'EXITGATE_TENANT_TOKENS: entry 2: must be TENANT:TOKEN (e.g. acme:$(openssl rand -hex 32))',
        'EXITGATE_TENANT_TOKENS: entry 3: "ACME" is not a tenant name (a DNS label)',
        'EXITGATE_TENANT_TOKENS: entry 4: a token may contain only letters, digits and - . _ ~ + / (then optional trailing =), no spaces or commas',
      ],
    });
    expect(JSON.stringify(r)).not.toContain('short-secret');
    expect(JSON.stringify(r)).not.toContain(GLOBEX);
  });

  it('refuses one token granted to two principals', () => {
    const r = mergeTokens({ admin: [ADMIN], tenants: {} }, { admin: [], tenants: { acme: [ADMIN, ACME] } }, { admin: [], tenants: { globex: [ACME] } });
    expect(r).toEqual({
      ok: false,
      errors: ['the same token is configured for admin and for tenant acme; give each its own token', 'the same token is configured for tenant acme and for tenant globex; give each its own token'],
    });
    expect(mergeTokens({ admin: [ADMIN], tenants: {} }, { admin: [ADMIN], tenants: {} })).toEqual({ ok: true, value: { admin: [ADMIN], tenants: {} } });
  });
});

describe('the config file', () => {
  it('reads tokens as literals, from the environment or from files', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-config-'));
    await fs.writeFile(path.join(dir, 'globex.token'), `${GLOBEX}\n`);
    const text = `admin:\n  tokens: ["${ADMIN}"]\ntenants:\n  acme:\n    tokens: [{ env: ACME_TOKEN }]\n  globex:\n    tokens: [{ file: globex.token }]\n`;
    await fs.writeFile(path.join(dir, 'exitgate.yaml'), text);
    expect(await loadConfigFile(path.join(dir, 'exitgate.yaml'), { ACME_TOKEN: ACME })).toEqual({
      ok: true,
      value: { tokens: { admin: [ADMIN], tenants: { acme: [ACME], globex: [GLOBEX] } } },
    });
    expect(await parseConfigText('c.yaml', '', {})).toEqual({ ok: true, value: { tokens: { admin: [], tenants: {} } } });
  });

  it('explains every mistake as FILE: PATH: reason, without the token', async () => {
    const text = `admin:\n  tokens: ["too-short", 5]\n  tokenz: []\ntenants:\n  ACME: { tokens: [] }\n  acme: { tokens: [{ env: UNSET_VAR }, { file: /nonexistent/token }] }\nlisten: x\n`;
    const r = await parseConfigText('exitgate.yaml', text, {});
    expect(r).toEqual({
      ok: false,
      errors: [
        'exitgate.yaml: admin.tokens[0]: a token must be at least 16 characters long (e.g. `openssl rand -hex 32`)',
        'exitgate.yaml: admin.tokens[1]: must be a token string, { env: VARIABLE } or { file: PATH }',
        'exitgate.yaml: admin.tokenz: unknown field',
        'exitgate.yaml: tenants.ACME: "ACME" is not a tenant name (a DNS label)',
        'exitgate.yaml: listen: unknown field',
      ],
    });
    expect(JSON.stringify(r)).not.toContain('too-short');
    expect(await parseConfigText('exitgate.yaml', 'tenants:\n  acme: { tokens: [{ env: UNSET_VAR }, { file: /nonexistent/token }, { env: WEAK }] }\n', { WEAK: 'weak-secret' })).toEqual({
      ok: false,
      errors: [
        'exitgate.yaml: tenants.acme.tokens[0]: environment variable UNSET_VAR is not set',
        'exitgate.yaml: tenants.acme.tokens[1]: cannot read /nonexistent/token: ENOENT',
        'exitgate.yaml: tenants.acme.tokens[2]: a token must be at least 16 characters long (e.g. `openssl rand -hex 32`)',
      ],
    });
    expect(await parseConfigText('x.yaml', 'admin: [1', {})).toEqual({ ok: false, errors: [expect.stringMatching(/^x\.yaml: invalid YAML: /)] });
    expect(await loadConfigFile('/nonexistent/exitgate.yaml', {})).toEqual({ ok: false, errors: ['/nonexistent/exitgate.yaml: cannot read: ENOENT'] });
  });

  it('unites file and environment for serve', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-config-'));
    const file = path.join(dir, 'exitgate.yaml');
    await fs.writeFile(file, `tenants: { acme: { tokens: ["${ACME}"] } }\n`);
    expect(await resolveAdminTokens(file, { EXITGATE_ADMIN_TOKENS: ADMIN })).toEqual({ ok: true, value: { admin: [ADMIN], tenants: { acme: [ACME] } } });
    expect(await resolveAdminTokens(undefined, {})).toEqual({ ok: true, value: { admin: [], tenants: {} } });
    expect(await resolveAdminTokens(file, { EXITGATE_TENANT_TOKENS: `globex:${ACME}` })).toEqual({
      ok: false,
      errors: ['the same token is configured for tenant acme and for tenant globex; give each its own token'],
    });
  });
});
