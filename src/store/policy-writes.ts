/**
 * The admin API's writes to a policy directory, decided on what is on disk (read under the
 * store's write lock), never on a cached view:
 *
 * - An API-managed policy lives alone in `<dir>/<tenant>/<name>.yaml`. A policy defined anywhere
 *   else (a hand-written file, perhaps with several documents) is readable through the API but
 *   not writable: PUT and DELETE answer 409 naming the file, instead of rewriting someone's file.
 * - A write is validated against the whole directory as it would be afterwards (SPEC §6.5: the
 *   directory is applied whole or not at all). Errors in the written policy are the caller's
 *   (400); errors elsewhere block the write (409) until an operator fixes them.
 * - Revisions are content hashes (revision.ts); `If-Match` / `If-None-Match` are checked here.
 */
import * as path from 'node:path';
import { listPolicyFiles, readTexts } from '../policy/load';
import { crossCheck, parsePolicyText, type ParsedFile } from '../policy/parse';
import type { ParseCache } from '../policy/parse-cache';
import type { PolicyError } from '../policy/errors';
import type { LoadedPolicy, PolicySet } from '../policy/documents';
import type { EgressPolicy } from '../policy/schema';
import { canonicalJson, policyEtag, renderPolicyFile } from './revision';

/** `If-Match` / `If-None-Match`: `*` or a list of quoted entity tags. */
export interface Preconditions {
  ifMatch?: '*' | string[];
  ifNoneMatch?: '*' | string[];
}

export type WriteRefusal =
  /** The policy itself is invalid, or invalid together with the rest of the directory. */
  | { ok: false; reason: 'invalid'; errors: PolicyError[] }
  /** A precondition failed, or the policy is not the API's to write; `etag` is the current revision if any. */
  | { ok: false; reason: 'conflict'; message: string; etag?: string }
  | { ok: false; reason: 'not-found'; message: string }
  /** Other files of the directory are invalid: no write can be applied until they are fixed. */
  | { ok: false; reason: 'blocked'; message: string; errors: PolicyError[] };

export type PutResult = { ok: true; created: boolean; etag: string; policy: EgressPolicy; applied: boolean; applyErrors?: PolicyError[] } | WriteRefusal;
export type DeleteResult = { ok: true; etag: string; applied: boolean; applyErrors?: PolicyError[] } | WriteRefusal;

export interface DiskFile {
  abs: string;
  shown: string;
  text?: string;
  parsed: ParsedFile;
}

/**
 * Reads and parses every policy file, naming files as `loadPolicyDir` does (relative to the
 * directory's parent). With a `cache` (the store's), files that did not change are not parsed again.
 */
export async function readPolicyDir(dir: string, cache?: ParseCache): Promise<DiskFile[]> {
  const base = path.dirname(path.resolve(dir));
  const out: DiskFile[] = [];
  const listed = await listPolicyFiles(dir);
  const texts = await readTexts(listed);
  listed.forEach((abs, i) => {
    const shown = path.relative(base, abs) || abs;
    const read = texts[i]!;
    if ('text' in read) out.push({ abs, shown, text: read.text, parsed: cache ? cache.parse(shown, read.text) : parsePolicyText(shown, read.text) });
    else if (read.error.code !== 'ENOENT') {
      // (ENOENT: deleted while listing.)
      out.push({ abs, shown, parsed: { policies: [], credentials: [], errors: [{ file: shown, doc: 0, path: '', message: `cannot read: ${read.error.message}` }] } });
    }
  });
  cache?.retainOnly(listed.map((abs) => path.relative(base, abs) || abs));
  return out;
}

/** Where the API keeps a policy. Tenant and name are DNS labels (checked by the caller), so no traversal. */
export const managedPath = (dir: string, tenant: string, name: string): string => path.join(path.resolve(dir), tenant, `${name}.yaml`);

/** The managed file's name as errors show it (`policies/acme/web.yaml`). */
export const managedDisplay = (dir: string, tenant: string, name: string): string =>
  path.relative(path.dirname(path.resolve(dir)), managedPath(dir, tenant, name));

export interface Located {
  /** The policy as on disk now, if it exists in the managed file. */
  current?: { policy: EgressPolicy; etag: string };
  /** Why the API may not write this policy (defined elsewhere, or the managed file holds more). */
  unmanaged?: string;
  /** The file that holds the text of the managed file, if it exists. */
  managedFile?: DiskFile;
}

/** Finds a policy on disk and whether the API manages it. */
export function locate(files: DiskFile[], dir: string, tenant: string, name: string): Located {
  const target = managedPath(dir, tenant, name);
  const display = managedDisplay(dir, tenant, name);
  const managedFile = files.find((f) => f.abs === target);
  const elsewhere: LoadedPolicy[] = files
    .filter((f) => f.abs !== target)
    .flatMap((f) => f.parsed.policies)
    .filter((lp) => lp.policy.metadata.tenant === tenant && lp.policy.metadata.name === name);
  const out: Located = managedFile ? { managedFile } : {};
  if (elsewhere.length > 0) {
    const at = elsewhere[0]!.source;
    out.unmanaged = `policy ${tenant}/${name} is defined in ${at.file} (doc ${at.doc}), a file the admin API does not manage; change it there, or move it out of that file and write it through the API (it would live in ${display})`;
    return out;
  }
  if (managedFile) {
    const p = managedFile.parsed;
    const only = p.policies[0];
    const isJustThisPolicy =
      p.errors.length === 0 && p.credentials.length === 0 && p.policies.length === 1 && only!.policy.metadata.tenant === tenant && only!.policy.metadata.name === name;
    if (!isJustThisPolicy) {
      out.unmanaged = `${display} holds something other than exactly policy ${tenant}/${name}, so the admin API will not replace it; fix or remove that file by hand`;
      return out;
    }
    out.current = { policy: only!.policy, etag: policyEtag(only!.policy) };
  }
  return out;
}

/** Checks `If-Match` / `If-None-Match` against the current revision; the reason when they fail. */
export function checkPreconditions(current: string | undefined, pre: Preconditions, what: string): string | undefined {
  const { ifMatch, ifNoneMatch } = pre;
  if (ifMatch !== undefined) {
    if (current === undefined) return `${what} does not exist, but If-Match requires a current revision`;
    if (ifMatch !== '*' && !ifMatch.includes(current)) return `${what} has changed: its revision is ${current}, not ${ifMatch.join(', ')}; read it again and retry`;
  }
  if (ifNoneMatch !== undefined && current !== undefined) {
    const weakStripped = ifNoneMatch === '*' ? '*' : ifNoneMatch.map((t) => t.replace(/^W\//, ''));
    if (weakStripped === '*') return `${what} already exists (revision ${current}) and If-None-Match: * asks to create it only`;
    if (weakStripped.includes(current)) return `${what} is at revision ${current}, which If-None-Match excludes`;
  }
  return undefined;
}

/**
 * The directory's documents with the managed file replaced by `replacement` (or removed), in the
 * order a reload of the directory after the write reads them (files sorted by path, as
 * `listPolicyFiles` lists them): the store applies this set directly after the write.
 */
export function candidateSet(files: DiskFile[], target: string, replacement: ParsedFile | undefined): { set: PolicySet; errors: PolicyError[] } {
  const set: PolicySet = { policies: [], credentials: [] };
  const errors: PolicyError[] = [];
  const entries = files.filter((f) => f.abs !== target).map((f) => ({ abs: f.abs, parsed: f.parsed }));
  if (replacement) entries.push({ abs: target, parsed: replacement });
  entries.sort((a, b) => (a.abs < b.abs ? -1 : a.abs > b.abs ? 1 : 0));
  for (const f of entries) {
    set.policies.push(...f.parsed.policies);
    set.credentials.push(...f.parsed.credentials);
    errors.push(...f.parsed.errors);
  }
  errors.push(...crossCheck(set));
  return { set, errors };
}

/**
 * Renders a validated policy as the managed file and parses it back: the file must mean exactly
 * the policy that was validated (a rendering bug must never store something else). Through the
 * store's `cache`, the reload that follows the write finds this parse instead of parsing again.
 */
export function renderChecked(policy: EgressPolicy, display: string, cache?: ParseCache): { text: string; parsed: ParsedFile } {
  const text = renderPolicyFile(policy);
  const parsed = cache ? cache.parse(display, text) : parsePolicyText(display, text);
  if (parsed.errors.length > 0 || parsed.policies.length !== 1 || canonicalJson(parsed.policies[0]!.policy) !== canonicalJson(policy)) {
    throw new Error(`internal: the rendered policy ${policy.metadata.tenant}/${policy.metadata.name} does not parse back to itself`);
  }
  return { text, parsed };
}

export const blockedMessage = (n: number): string =>
  `the policy directory has ${n} error(s) outside this policy, so no change can be applied until an operator fixes them; nothing was written`;
