/**
 * The `serve --config FILE` configuration file (YAML or JSON), validated with zod at the border:
 *
 * ```yaml
 * admin:
 *   tokens: ["<token>", { env: EXITGATE_ROOT_TOKEN }]
 * tenants:
 *   acme:
 *     tokens: [{ file: /run/secrets/acme-admin-token }]
 * ```
 *
 * A token is a literal, or `{env: NAME}` / `{file: PATH}` so that the file itself need hold no
 * secret. Errors read `FILE: FIELD.PATH: reason` (the policy error format) and never contain a token.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { fromZodIssues, formatPolicyError } from '../policy/errors';
import { tenantNameSchema, tokenProblem, tokenSchema, type TokenConfig } from './tokens';

const tokenSource = z.union(
  [tokenSchema, z.strictObject({ env: z.string().min(1) }), z.strictObject({ file: z.string().min(1) })],
  { error: 'must be a token string, { env: VARIABLE } or { file: PATH }' },
);

const tokenList = z.array(tokenSource, { error: 'must be a list of tokens' });

export const configFileSchema = z.strictObject({
  admin: z.strictObject({ tokens: tokenList.default([]) }).optional(),
  tenants: z.record(tenantNameSchema, z.strictObject({ tokens: tokenList.default([]) })).optional(),
});

export type ConfigFile = z.infer<typeof configFileSchema>;

export interface ServeConfig {
  tokens: TokenConfig;
}

/** zod reports a bad record key as "Invalid key in record"; say what is wrong with it instead. */
function keyIssue(issue: z.core.$ZodIssue): z.core.$ZodIssue {
  if (issue.code !== 'invalid_key') return issue;
  const inner = issue.issues[0];
  return inner ? { ...issue, message: inner.message } : issue;
}

/** Reads, validates and resolves a config file; every error as one line. */
export async function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<{ ok: true; value: ServeConfig } | { ok: false; errors: string[] }> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    return { ok: false, errors: [`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`] };
  }
  return parseConfigText(file, text, env, path.dirname(path.resolve(file)));
}

/** Parses config text. `{file: PATH}` tokens are read relative to `baseDir` (the config file's directory). */
export async function parseConfigText(
  file: string,
  text: string,
  env: NodeJS.ProcessEnv = process.env,
  baseDir = process.cwd(),
): Promise<{ ok: true; value: ServeConfig } | { ok: false; errors: string[] }> {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) return { ok: false, errors: doc.errors.map((e) => `${file}: invalid YAML: ${e.message.split('\n')[0]}`) };
  const raw: unknown = doc.toJS() ?? {};
  const parsed = configFileSchema.safeParse(raw);
  if (!parsed.success) return { ok: false, errors: fromZodIssues(file, 0, parsed.error.issues.map(keyIssue)).map(formatPolicyError) };

  const errors: string[] = [];
  const resolve = async (where: string, src: z.infer<typeof tokenSource>): Promise<string | undefined> => {
    let value: string;
    if (typeof src === 'string') return src;
    if ('env' in src) {
      const v = env[src.env];
      if (v === undefined || v.trim() === '') {
        errors.push(`${file}: ${where}: environment variable ${src.env} is not set`);
        return undefined;
      }
      value = v.trim();
    } else {
      try {
        value = (await fs.readFile(path.resolve(baseDir, src.file), 'utf8')).trim();
      } catch (err) {
        errors.push(`${file}: ${where}: cannot read ${src.file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
        return undefined;
      }
    }
    const problem = tokenProblem(value);
    if (problem) {
      errors.push(`${file}: ${where}: ${problem}`);
      return undefined;
    }
    return value;
  };

  const tokens: TokenConfig = { admin: [], tenants: {} };
  const admin = parsed.data.admin?.tokens ?? [];
  for (const [i, src] of admin.entries()) {
    const t = await resolve(`admin.tokens[${i}]`, src);
    if (t !== undefined) tokens.admin.push(t);
  }
  for (const [tenant, cfg] of Object.entries(parsed.data.tenants ?? {})) {
    const list: string[] = [];
    for (const [i, src] of cfg.tokens.entries()) {
      const t = await resolve(`tenants.${tenant}.tokens[${i}]`, src);
      if (t !== undefined) list.push(t);
    }
    tokens.tenants[tenant] = list;
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: { tokens } };
}
