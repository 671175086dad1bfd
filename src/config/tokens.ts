/**
 * Admin API tokens (SPEC §4 "Auth"): where they come from and what they grant. A token is an
 * opaque RFC 6750 `b64token` of at least 16 characters; it grants either everything (admin) or
 * one tenant. Tokens come from the config file (`serve --config`) and/or the environment:
 *
 *   EXITGATE_ADMIN_TOKENS=tok1,tok2
 *   EXITGATE_TENANT_TOKENS=acme:tokA,globex:tokB
 *
 * Error messages name where a bad token is (variable and entry, or file and field path), never
 * the token itself: an error is printed and logged, a token must never be.
 */
import { z } from 'zod';

/** RFC 6750 §2.1 b64token: what may follow `Bearer ` in an Authorization header. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
export const MIN_TOKEN_LENGTH = 16;
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export const ADMIN_TOKENS_ENV = 'EXITGATE_ADMIN_TOKENS';
export const TENANT_TOKENS_ENV = 'EXITGATE_TENANT_TOKENS';

/** Every configured token and what it grants. Empty lists everywhere = no tokens (loopback-only mode). */
export interface TokenConfig {
  admin: string[];
  tenants: Record<string, string[]>;
}

export const emptyTokens = (): TokenConfig => ({ admin: [], tenants: {} });

export const hasTokens = (t: TokenConfig): boolean => t.admin.length > 0 || Object.values(t.tenants).some((l) => l.length > 0);

/** Why a token is unusable, or undefined when it is fine. Never mentions the value. */
export function tokenProblem(token: string): string | undefined {
  if (!B64TOKEN.test(token)) return 'a token may contain only letters, digits and - . _ ~ + / (then optional trailing =), no spaces or commas';
  if (token.length < MIN_TOKEN_LENGTH) return `a token must be at least ${MIN_TOKEN_LENGTH} characters long (e.g. \`openssl rand -hex 32\`)`;
  return undefined;
}

/** The zod form of a token, for the config file schema. The message never echoes the value. */
export const tokenSchema = z.string({ error: 'must be a string' }).superRefine((value, ctx) => {
  const problem = tokenProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem, input: undefined });
});

export const tenantNameSchema = z.string().regex(DNS_LABEL, { error: (iss) => `${JSON.stringify(iss.input)} is not a tenant name (a DNS label)` });

/** Reads tokens from the environment; errors name the variable and the entry (1-based), not the value. */
export function tokensFromEnv(env: NodeJS.ProcessEnv = process.env): { ok: true; value: TokenConfig } | { ok: false; errors: string[] } {
  const out = emptyTokens();
  const errors: string[] = [];
  const entries = (name: string): string[] => (env[name] ?? '').split(',').map((s) => s.trim());
  entries(ADMIN_TOKENS_ENV).forEach((token, i) => {
    if (token === '') return;
    const problem = tokenProblem(token);
    if (problem) errors.push(`${ADMIN_TOKENS_ENV}: entry ${i + 1}: ${problem}`);
    else out.admin.push(token);
  });
  entries(TENANT_TOKENS_ENV).forEach((entry, i) => {
    if (entry === '') return;
    const colon = entry.indexOf(':');
    if (colon < 0) {
      errors.push(`${TENANT_TOKENS_ENV}: entry ${i + 1}: must be TENANT:TOKEN (e.g. acme:$(openssl rand -hex 32))`);
      return;
    }
    const tenant = entry.slice(0, colon);
    const token = entry.slice(colon + 1);
    if (!DNS_LABEL.test(tenant)) {
      errors.push(`${TENANT_TOKENS_ENV}: entry ${i + 1}: ${JSON.stringify(tenant)} is not a tenant name (a DNS label)`);
      return;
    }
    const problem = tokenProblem(token);
    if (problem) errors.push(`${TENANT_TOKENS_ENV}: entry ${i + 1}: ${problem}`);
    else (out.tenants[tenant] ??= []).push(token);
  });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: out };
}

/**
 * Unites token sources and refuses a token granted to two different principals (admin and a
 * tenant, or two tenants): which one it means would depend on lookup order. The same token
 * listed twice for the same principal is harmless and kept once.
 */
export function mergeTokens(...sources: TokenConfig[]): { ok: true; value: TokenConfig } | { ok: false; errors: string[] } {
  const owner = new Map<string, string>();
  const out = emptyTokens();
  const errors: string[] = [];
  const add = (principal: string, token: string, push: () => void): void => {
    const earlier = owner.get(token);
    if (earlier === undefined) {
      owner.set(token, principal);
      push();
    } else if (earlier !== principal) {
      errors.push(`the same token is configured for ${earlier} and for ${principal}; give each its own token`);
    }
  };
  for (const s of sources) {
    for (const t of s.admin) add('admin', t, () => out.admin.push(t));
    for (const [tenant, list] of Object.entries(s.tenants)) {
      for (const t of list) add(`tenant ${tenant}`, t, () => (out.tenants[tenant] ??= []).push(t));
    }
  }
  return errors.length > 0 ? { ok: false, errors: [...new Set(errors)] } : { ok: true, value: out };
}
