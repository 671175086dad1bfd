/**
 * The embedded policy store: a watched directory. Every change reloads the whole directory and
 * applies it only if every file is valid; an invalid change is reported with its errors and the
 * last good policy set stays in force (SPEC §6.5).
 *
 * The admin API writes through this store (SPEC §4): `putPolicy` / `deletePolicy` run one at a
 * time under a lock, check revisions and validity against the directory on disk, replace the
 * managed file atomically (atomic-write.ts), and resolve only once the store has applied the
 * result, so an API client that got 200 knows its change is in force. Reloads are serialized
 * (watcher, rescan and API alike), so an older read of the directory can never be applied after
 * a newer one. An admin write applies the set it validated (the directory it read under the lock,
 * with its own file written) without reading the directory again, unless a reload began in between
 * (see applyWritten).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EventEmitter } from 'node:events';
import { listPolicyFiles, loadListedPolicyDir, policyDirUnreadable } from '../policy/load';
import { ParseCache } from '../policy/parse-cache';
import type { PolicySet, Source } from '../policy/documents';
import type { PolicyError } from '../policy/errors';
import type { EgressPolicy } from '../policy/schema';
import { Mutex } from './mutex';
import { atomicWriteFile, durableUnlink, ensureDir, removeStaleTempFiles } from './atomic-write';
import { policyEtag } from './revision';
import {
  blockedMessage,
  candidateSet,
  checkPreconditions,
  locate,
  managedDisplay,
  managedPath,
  readPolicyDir,
  renderChecked,
  type DeleteResult,
  type DiskFile,
  type Located,
  type Preconditions,
  type PutResult,
} from './policy-writes';

export type { DeleteResult, Preconditions, PutResult, WriteRefusal } from './policy-writes';

export interface PolicyStoreEvents {
  /** A new valid set (content differs from the last one applied). */
  policies: [PolicySet];
  /** A change was refused; the previous set stays. */
  invalid: [PolicyError[]];
}

/** A policy in force, as the admin API shows it. */
export interface StoredPolicy {
  policy: EgressPolicy;
  /** Quoted strong entity tag (content hash). */
  etag: string;
  /** Where it is defined (`policies/acme/web.yaml`) and the document index. */
  file: string;
  doc: number;
  /** Whether the admin API may write it (it lives alone in its managed file). */
  managed: boolean;
}

type LoadResult = { ok: true } | { ok: false; errors: PolicyError[] };

/** What an admin write read under the write lock, and the managed file it will write. */
interface WriteRead {
  readAt: number;
  readStarted: number;
  files: DiskFile[];
  found: Located;
  target: string;
}

/**
 * Where the time of the last applied read went, for the "policies applied" log line (ms):
 * `via` `watch` (a watch event or the rescan), `reload` (applyNow) or `admin-write`; `waitMs` from
 * the first watch event of the burst to the start of the reload (the debounce and the queue);
 * `readMs` listing, reading and parsing the directory (an admin write: also validating the directory
 * with the policy in it); `writeMs` the admin write's durable write.
 */
export interface ApplyTiming {
  via: 'watch' | 'reload' | 'admin-write';
  waitMs?: number;
  readMs: number;
  writeMs?: number;
}

const ms = (from: number, to = performance.now()): number => Math.round((to - from) * 100) / 100;

/**
 * Editors and `mv` produce bursts of events; one reload per burst. A `change` event (a file's content
 * is being written in place) waits until the directory has been quiet for DEBOUNCE_MS, so a reload
 * does not read a file its writer is still writing. A `rename` event alone (a file renamed into
 * place, as atomic writers and config sync tools do, or removed) names a file that is complete:
 * it waits only RENAME_SETTLE_MS, enough to coalesce the burst of one `mv` (old name, new name, both
 * watchers). A `rename` within DEBOUNCE_MS of a `change` waits the full debounce.
 */
const DEBOUNCE_MS = 15;
const RENAME_SETTLE_MS = 1;
/** Safety net for events fs.watch can miss (some editors, network file systems). */
const RESCAN_MS = 2000;

export class FilePolicyStore extends EventEmitter<PolicyStoreEvents> {
  private watchers: fs.FSWatcher[] = [];
  private timer?: NodeJS.Timeout;
  /** When the last `change` watch event arrived (performance.now()). */
  private lastChangeAt = -Infinity;
  /** When the first watch event not yet served by a reload arrived. */
  private burstAt?: number;
  private rescan?: NodeJS.Timeout;
  /** The last set applied (emitted); `current` may differ from it in sources only. */
  private lastApplied?: PolicySet;
  private lastErrorsJson = '';
  private lastSignature = '';
  /** Counts reloads and applied writes; an admin write applies its own set only if none began after its read. */
  private generation = 0;
  /** The result of the last reload, once it completed. */
  private lastReload?: LoadResult;
  private loading: Promise<unknown> = Promise.resolve();
  private readonly writeLock = new Mutex();
  /** Reloads and admin writes parse only the files whose text changed (see parse-cache.ts). */
  readonly parseCache = new ParseCache();
  current?: PolicySet;
  /** Stage times of the read behind the last 'policies' event (set before it is emitted). */
  applyTiming?: ApplyTiming;

  constructor(readonly dir: string) {
    super();
  }

  /** Loads once (resolving with the result) and starts watching. */
  async start(): Promise<LoadResult> {
    // Temporary files of a writer that crashed mid-write: never loaded, but not worth keeping.
    await removeStaleTempFiles(this.dir);
    const first = await this.applyNow();
    // Node 20's recursive watch on Linux sets itself up asynchronously and can miss the first
    // events; a plain watch of the directory itself is armed at once. Duplicates are debounced.
    const onEvent = (event: string, file: string | Buffer | null) => this.onWatchEvent(event, file);
    this.watchers = [fs.watch(this.dir, onEvent), fs.watch(this.dir, { recursive: true }, onEvent)];
    for (const w of this.watchers) w.on('error', () => this.schedule('change'));
    this.rescan = setInterval(() => void this.rescanIfChanged(), RESCAN_MS);
    this.rescan.unref();
    return first;
  }

  stop(): void {
    for (const w of this.watchers) w.close();
    if (this.timer) clearTimeout(this.timer);
    if (this.rescan) clearInterval(this.rescan);
  }

  /**
   * Reloads the directory now (after any reload in progress) and applies it if valid; resolves
   * once listeners of 'policies' have run, i.e. once the new set is in the snapshot cache.
   */
  applyNow(): Promise<LoadResult> {
    const run = this.loading.then(() => this.reload());
    this.loading = run.catch(() => undefined);
    return run;
  }

  /** The policy in force for (tenant, name), if any. */
  getPolicy(tenant: string, name: string): StoredPolicy | undefined {
    return this.listPolicies(tenant).find((p) => p.policy.metadata.name === name);
  }

  /** The policies in force for a tenant, by name. */
  listPolicies(tenant: string): StoredPolicy[] {
    const set = this.current ?? { policies: [], credentials: [] };
    const docsPerFile = new Map<string, number>();
    for (const d of [...set.policies.map((p) => p.source), ...set.credentials.map((c) => c.source)]) docsPerFile.set(d.file, (docsPerFile.get(d.file) ?? 0) + 1);
    return set.policies
      .filter((lp) => lp.policy.metadata.tenant === tenant)
      .map((lp) => ({
        policy: lp.policy,
        etag: policyEtag(lp.policy),
        file: lp.source.file,
        doc: lp.source.doc,
        managed: lp.source.file === managedDisplay(this.dir, tenant, lp.policy.metadata.name) && docsPerFile.get(lp.source.file) === 1,
      }))
      .sort((a, b) => a.policy.metadata.name.localeCompare(b.policy.metadata.name));
  }

  /** The name under which errors about a managed policy file are reported (`policies/acme/web.yaml`). */
  displayPath(tenant: string, name: string): string {
    return managedDisplay(this.dir, tenant, name);
  }

  /**
   * Creates or replaces an API-managed policy (already validated on its own, e.g. by the admin
   * API's body parser). See policy-writes.ts for the rules; resolves after the store applied it.
   */
  putPolicy(policy: EgressPolicy, pre: Preconditions = {}): Promise<PutResult> {
    return this.writeLock.run(async () => {
      const { tenant, name } = policy.metadata;
      const what = `policy ${tenant}/${name}`;
      const read = await this.readForWrite(tenant, name);
      const { found } = read;
      if (found.unmanaged) return { ok: false, reason: 'conflict', message: found.unmanaged, ...(found.current ? { etag: found.current.etag } : {}) };
      const failed = checkPreconditions(found.current?.etag, pre, what);
      if (failed) return { ok: false, reason: 'conflict', message: failed, ...(found.current ? { etag: found.current.etag } : {}) };

      const display = managedDisplay(this.dir, tenant, name);
      const release = this.parseCache.hold(display);
      try {
        return await this.writeChecked(policy, read, display);
      } finally {
        release();
      }
    });
  }

  /** The rest of putPolicy: validate the directory with the policy in it, write, apply. */
  private async writeChecked(policy: EgressPolicy, read: WriteRead, display: string): Promise<PutResult> {
    const { found, target } = read;
    const rendered = renderChecked(policy, display, this.parseCache);
    const { set, errors } = candidateSet(read.files, target, rendered.parsed);
    const own = errors.filter((e) => e.file === display);
    if (own.length > 0) return { ok: false, reason: 'invalid', errors: own };
    if (errors.length > 0) return { ok: false, reason: 'blocked', message: blockedMessage(errors.length), errors };

    const writeStarted = performance.now();
    if (found.managedFile?.text !== rendered.text) {
      if (!found.managedFile) await ensureDir(this.dir, path.dirname(target));
      await atomicWriteFile(target, rendered.text);
    }
    const applied = await this.applyAfterWrite(set, read, writeStarted);
    const etag = policyEtag(rendered.parsed.policies[0]!.policy);
    return { ok: true, created: !found.current, etag, policy: rendered.parsed.policies[0]!.policy, applied: applied.ok, ...(applied.ok ? {} : { applyErrors: applied.errors }) };
  }

  /** Deletes an API-managed policy; resolves after the store applied the result. */
  deletePolicy(tenant: string, name: string, pre: Preconditions = {}): Promise<DeleteResult> {
    return this.writeLock.run(async () => {
      const what = `policy ${tenant}/${name}`;
      const read = await this.readForWrite(tenant, name);
      const { found } = read;
      if (found.unmanaged) return { ok: false, reason: 'conflict', message: found.unmanaged, ...(found.current ? { etag: found.current.etag } : {}) };
      if (!found.current) return { ok: false, reason: 'not-found', message: `${what} does not exist` };
      const failed = checkPreconditions(found.current.etag, pre, what);
      if (failed) return { ok: false, reason: 'conflict', message: failed, etag: found.current.etag };

      const { set, errors } = candidateSet(read.files, read.target, undefined);
      if (errors.length > 0) return { ok: false, reason: 'blocked', message: blockedMessage(errors.length), errors };

      const writeStarted = performance.now();
      await durableUnlink(read.target);
      const applied = await this.applyAfterWrite(set, read, writeStarted);
      return { ok: true, etag: found.current.etag, applied: applied.ok, ...(applied.ok ? {} : { applyErrors: applied.errors }) };
    });
  }

  /** An admin write's read of the directory, under the write lock (`readAt`: the generation before it). */
  private async readForWrite(tenant: string, name: string): Promise<WriteRead> {
    const readAt = this.generation;
    const readStarted = performance.now();
    const files = await readPolicyDir(this.dir, this.parseCache);
    return { readAt, readStarted, files, found: locate(files, this.dir, tenant, name), target: managedPath(this.dir, tenant, name) };
  }

  /** Applies what an admin write validated, once its change is durable (see applyWritten). */
  private applyAfterWrite(set: PolicySet, read: WriteRead, writeStarted: number): Promise<LoadResult> {
    const timing: ApplyTiming = { via: 'admin-write', readMs: ms(read.readStarted, writeStarted), writeMs: ms(writeStarted) };
    return this.applyWritten(set, read.readAt, this.generation, timing);
  }

  /**
   * A watch event. Events about names no reload reads (a path with a dot-file or dot-directory in it:
   * the store's own temporary files, editors' swap files) are ignored; a dot-file renamed to a policy
   * file's name produces an event for that name too.
   */
  private onWatchEvent(event: string, file: string | Buffer | null): void {
    const name = file === null ? '' : file.toString();
    if (name !== '' && name.split(path.sep).some((part) => part.startsWith('.'))) return;
    this.schedule(event === 'rename' ? 'rename' : 'change');
  }

  private schedule(kind: 'rename' | 'change'): void {
    const now = performance.now();
    this.burstAt ??= now;
    if (kind === 'change') this.lastChangeAt = now;
    const settling = now - this.lastChangeAt < DEBOUNCE_MS;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        void this.applyNow();
      },
      settling ? DEBOUNCE_MS : RENAME_SETTLE_MS,
    );
  }

  /** The safety-net rescan reads names, sizes and mtimes only; files are read when they changed. */
  private async rescanIfChanged(): Promise<void> {
    const signature = await this.signature().catch(() => '');
    if (signature !== this.lastSignature) this.schedule('change');
  }

  private async signature(): Promise<string> {
    return this.signatureOf(await listPolicyFiles(this.dir));
  }

  private async signatureOf(files: readonly string[]): Promise<string> {
    const stats = await Promise.all(
      files.map(async (f) => {
        const st = await fs.promises.stat(f);
        return `${f}:${st.mtimeMs}:${st.size}`;
      }),
    );
    return stats.join('\n');
  }

  /**
   * Applies the result of an admin write, in the reload queue (so reloads and writes stay
   * serialized). `set` is the directory as the writer read it under the write lock (`readAt`: the
   * generation before that read), with its own file replaced or removed (`writtenAt`: the
   * generation once the write was durable). This saves the write a second listing and reading of
   * every file:
   * - no reload began since the read: `set` is what the directory holds; it is applied as is;
   * - a reload began after the write (e.g. the watch event of the write itself): it read the
   *   directory with the write in it, and its result stands;
   * - a reload began between the read and the write: someone else changed the directory; it is
   *   read again.
   */
  private applyWritten(set: PolicySet, readAt: number, writtenAt: number, timing: ApplyTiming): Promise<LoadResult> {
    const run = this.loading.then(() => {
      if (this.generation === readAt) {
        this.generation += 1;
        this.applyTiming = timing;
        // The safety-net rescan reads the directory again within RESCAN_MS (and the watch event of
        // the write itself schedules a reload): a change this set could not see is applied then.
        this.lastSignature = '';
        return this.applySet(set);
      }
      if (this.generation !== writtenAt && this.lastReload) return this.lastReload;
      return this.reload();
    });
    this.loading = run.catch(() => undefined);
    return run;
  }

  private async reload(): Promise<LoadResult> {
    this.generation += 1;
    delete this.lastReload;
    const started = performance.now();
    const eventAt = this.burstAt;
    delete this.burstAt;
    // One listing serves both the signature (stat-ed before the files are read, so a change made
    // while reading shows in the next rescan) and the read.
    const listed = await listPolicyFiles(this.dir).catch((err: Error) => err);
    this.lastSignature = listed instanceof Error ? '' : await this.signatureOf(listed).catch(() => '');
    const loaded = listed instanceof Error ? policyDirUnreadable(this.dir, listed) : await loadListedPolicyDir(this.dir, listed, this.parseCache);
    this.applyTiming = { via: eventAt !== undefined ? 'watch' : 'reload', ...(eventAt !== undefined ? { waitMs: ms(eventAt, started) } : {}), readMs: ms(started) };
    if (!loaded.ok) {
      const json = JSON.stringify(loaded.errors);
      if (json !== this.lastErrorsJson) {
        this.lastErrorsJson = json;
        this.emit('invalid', loaded.errors);
      }
      return (this.lastReload = { ok: false, errors: loaded.errors });
    }
    return (this.lastReload = this.applySet(loaded.value));
  }

  /** Applies a valid set read from the directory: emits 'policies' if its documents changed. */
  private applySet(set: PolicySet): LoadResult {
    this.lastErrorsJson = '';
    const last = this.lastApplied;
    if (!last || !sameDocuments(set.policies, last.policies, (p) => p.policy) || !sameDocuments(set.credentials, last.credentials, (c) => c.credential)) {
      this.lastApplied = set;
      this.current = set;
      this.emit('policies', set);
    } else if (!sameSources(set, this.current ?? last)) {
      // Same policies, other files (e.g. a policy moved): keep `current` exact, push nothing.
      this.current = set;
    }
    return { ok: true };
  }
}

/**
 * Whether two lists hold the same documents in the same order. Files that did not change keep
 * their parsed objects (ParseCache), so most documents compare by identity; only re-parsed ones are
 * compared by content (a comment-only edit, or a file re-parsed because another document in it
 * changed, is no change).
 */
function sameDocuments<T>(a: readonly T[], b: readonly T[], doc: (x: T) => object): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) {
    const x = doc(a[i]!);
    const y = doc(b[i]!);
    if (x !== y && JSON.stringify(x) !== JSON.stringify(y)) return false;
  }
  return true;
}

/** Whether every document of two sets with the same documents comes from the same file and position. */
function sameSources(a: PolicySet, b: PolicySet): boolean {
  const same = (x: Source, y: Source) => x.file === y.file && x.doc === y.doc;
  return a.policies.every((p, i) => same(p.source, b.policies[i]!.source)) && a.credentials.every((c, i) => same(c.source, b.credentials[i]!.source));
}
