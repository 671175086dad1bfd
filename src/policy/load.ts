/** Files -> a validated PolicySet, or every error found. The only file I/O of the policy layer. */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { crossCheck, parsePolicyText } from './parse';
import type { ParseCache } from './parse-cache';
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
 * Reads files' text, several at a time (a reload reads every file; one at a time, a directory of
 * thousands costs its sum of round trips to the thread pool). Results are in the order of `files`.
 */
export async function readTexts(files: readonly string[], concurrency = 16): Promise<Array<{ text: string } | { error: NodeJS.ErrnoException }>> {
  const out = new Array<{ text: string } | { error: NodeJS.ErrnoException }>(files.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const i = next++;
      try {
        out[i] = { text: await fs.readFile(files[i]!, 'utf8') };
      } catch (err) {
        out[i] = { error: err as NodeJS.ErrnoException };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
  return out;
}

/**
 * Loads files into one PolicySet. `displayBase` makes file names in errors relative (the
 * user's view: `policies/acme.yaml`), not absolute temp paths. With a `cache`, a file whose name
 * and text did not change reuses its earlier parse, and entries of files not in `files` are dropped.
 */
export async function loadPolicyFiles(files: string[], displayBase?: string, cache?: ParseCache): Promise<Result<PolicySet, PolicyError>> {
  const set: PolicySet = { policies: [], credentials: [] };
  const errors: PolicyError[] = [];
  const shownNames: string[] = [];
  const texts = await readTexts(files);
  files.forEach((file, i) => {
    const shown = displayBase ? path.relative(displayBase, file) || file : file;
    shownNames.push(shown);
    const read = texts[i]!;
    if ('error' in read) {
      errors.push({ file: shown, doc: 0, path: '', message: `cannot read: ${read.error.message}` });
      return;
    }
    const parsed = cache ? cache.parse(shown, read.text) : parsePolicyText(shown, read.text);
    set.policies.push(...parsed.policies);
    set.credentials.push(...parsed.credentials);
    errors.push(...parsed.errors);
  });
  cache?.retainOnly(shownNames);
  errors.push(...crossCheck(set));
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: set };
}

/**
 * Loads a policy directory; files are named relative to the directory's parent (`policies/x.yaml`).
 * `cache`: see loadPolicyFiles.
 */
export async function loadPolicyDir(dir: string, cache?: ParseCache): Promise<Result<PolicySet, PolicyError>> {
  let files: string[];
  try {
    files = await listPolicyFiles(dir);
  } catch (err) {
    return policyDirUnreadable(dir, err as Error);
  }
  return loadListedPolicyDir(dir, files, cache);
}

/** loadPolicyDir with the directory already listed (`files`: listPolicyFiles(dir)). */
export function loadListedPolicyDir(dir: string, files: string[], cache?: ParseCache): Promise<Result<PolicySet, PolicyError>> {
  return loadPolicyFiles(files, path.dirname(path.resolve(dir)), cache);
}

/** The result of loading a directory that cannot be listed. */
export function policyDirUnreadable(dir: string, err: Error): { ok: false; errors: PolicyError[] } {
  return { ok: false, errors: [{ file: dir, doc: 0, path: '', message: `cannot read policy directory: ${err.message}` }] };
}
