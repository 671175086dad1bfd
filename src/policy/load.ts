/** Files -> a validated PolicySet, or every error found. The only file I/O of the policy layer. */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { crossCheck, parsePolicyText } from './parse';
import type { PolicyError } from './errors';
import type { PolicySet } from './documents';
import type { Result } from '../util/result';

const POLICY_FILE = /\.(ya?ml|json)$/i;

/** Lists policy files under a directory (recursively, skipping dot-files and editor temp files). */
export async function listPolicyFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    const entries = await fs.readdir(d, { withFileTypes: true });
    for (const e of entries) {
      if (e.name.startsWith('.') || e.name.endsWith('~')) continue;
      const full = path.join(d, e.name);
      if (e.isDirectory()) await walk(full);
      else if (e.isFile() && POLICY_FILE.test(e.name)) out.push(full);
    }
  };
  await walk(dir);
  return out.sort();
}

/**
 * Loads files into one PolicySet. `displayBase` makes file names in errors relative (the
 * user's view: `policies/acme.yaml`), not absolute temp paths.
 */
export async function loadPolicyFiles(files: string[], displayBase?: string): Promise<Result<PolicySet, PolicyError>> {
  const set: PolicySet = { policies: [], credentials: [] };
  const errors: PolicyError[] = [];
  for (const file of files) {
    const shown = displayBase ? path.relative(displayBase, file) || file : file;
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      errors.push({ file: shown, doc: 0, path: '', message: `cannot read: ${(err as Error).message}` });
      continue;
    }
    const parsed = parsePolicyText(shown, text);
    set.policies.push(...parsed.policies);
    set.credentials.push(...parsed.credentials);
    errors.push(...parsed.errors);
  }
  errors.push(...crossCheck(set));
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: set };
}

/** Loads a policy directory; files are named relative to the directory's parent (`policies/x.yaml`). */
export async function loadPolicyDir(dir: string): Promise<Result<PolicySet, PolicyError>> {
  let files: string[];
  try {
    files = await listPolicyFiles(dir);
  } catch (err) {
    return { ok: false, errors: [{ file: dir, doc: 0, path: '', message: `cannot read policy directory: ${(err as Error).message}` }] };
  }
  return loadPolicyFiles(files, path.dirname(path.resolve(dir)));
}
