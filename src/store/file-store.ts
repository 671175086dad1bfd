/**
 * The embedded policy store: a watched directory. Every change reloads the whole directory and
 * applies it only if every file is valid; an invalid change is reported with its errors and the
 * last good policy set stays in force (SPEC §6.5).
 */
import * as fs from 'node:fs';
import { EventEmitter } from 'node:events';
import { listPolicyFiles, loadPolicyDir } from '../policy/load';
import type { PolicySet } from '../policy/documents';
import type { PolicyError } from '../policy/errors';

export interface PolicyStoreEvents {
  /** A new valid set (content differs from the last one applied). */
  policies: [PolicySet];
  /** A change was refused; the previous set stays. */
  invalid: [PolicyError[]];
}

/** Editors and `mv` produce bursts of events; one reload per burst. */
const DEBOUNCE_MS = 15;
/** Safety net for events fs.watch can miss (some editors, network file systems). */
const RESCAN_MS = 2000;

export class FilePolicyStore extends EventEmitter<PolicyStoreEvents> {
  private watchers: fs.FSWatcher[] = [];
  private timer?: NodeJS.Timeout;
  private rescan?: NodeJS.Timeout;
  private lastJson = '';
  private lastErrorsJson = '';
  private lastSignature = '';
  private loading: Promise<void> = Promise.resolve();
  current?: PolicySet;

  constructor(readonly dir: string) {
    super();
  }

  /** Loads once (resolving with the result) and starts watching. */
  async start(): Promise<{ ok: true } | { ok: false; errors: PolicyError[] }> {
    const first = await this.reload();
    // Node 20's recursive watch on Linux sets itself up asynchronously and can miss the first
    // events; a plain watch of the directory itself is armed at once. Duplicates are debounced.
    this.watchers = [fs.watch(this.dir, () => this.schedule()), fs.watch(this.dir, { recursive: true }, () => this.schedule())];
    for (const w of this.watchers) w.on('error', () => this.schedule());
    this.rescan = setInterval(() => void this.rescanIfChanged(), RESCAN_MS);
    this.rescan.unref();
    return first;
  }

  stop(): void {
    for (const w of this.watchers) w.close();
    if (this.timer) clearTimeout(this.timer);
    if (this.rescan) clearInterval(this.rescan);
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.loading = this.loading.then(() => this.reload().then(() => undefined));
    }, DEBOUNCE_MS);
  }

  /** The safety-net rescan reads names, sizes and mtimes only; files are read when they changed. */
  private async rescanIfChanged(): Promise<void> {
    const signature = await this.signature().catch(() => '');
    if (signature !== this.lastSignature) this.schedule();
  }

  private async signature(): Promise<string> {
    const files = await listPolicyFiles(this.dir);
    const stats = await Promise.all(
      files.map(async (f) => {
        const st = await fs.promises.stat(f);
        return `${f}:${st.mtimeMs}:${st.size}`;
      }),
    );
    return stats.join('\n');
  }

  private async reload(): Promise<{ ok: true } | { ok: false; errors: PolicyError[] }> {
    this.lastSignature = await this.signature().catch(() => '');
    const loaded = await loadPolicyDir(this.dir);
    if (!loaded.ok) {
      const json = JSON.stringify(loaded.errors);
      if (json !== this.lastErrorsJson) {
        this.lastErrorsJson = json;
        this.emit('invalid', loaded.errors);
      }
      return { ok: false, errors: loaded.errors };
    }
    this.lastErrorsJson = '';
    const json = JSON.stringify(loaded.value.policies.map((p) => p.policy)) + JSON.stringify(loaded.value.credentials.map((c) => c.credential));
    if (json !== this.lastJson) {
      this.lastJson = json;
      this.current = loaded.value;
      this.emit('policies', loaded.value);
    }
    return { ok: true };
  }
}
