/**
 * Credential values for Envoy to inject (SPEC §2 Credential): read from the environment or a file,
 * re-read when the file changes (rotation without restarting anything). The value is kept only
 * here and in the SDS secret built from it; it is never logged, and errors name the source, never
 * the content.
 */
import { EventEmitter } from 'node:events';
import { readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import type { LoadedCredential } from '../policy/documents';
import type { CredentialValue } from '../translate/options';
import type { Logger } from '../util/logger';

/** File sources are polled: cheap (a stat), and reliable for the atomic renames secret managers do. */
const POLL_MS = 500;

interface Source {
  key: string;
  header: string;
  prefix?: string;
  env?: string;
  file?: string;
}

export class CredentialStore extends EventEmitter<{ change: [] }> {
  private sources: Source[] = [];
  private values = new Map<string, CredentialValue>();
  private fileStamps = new Map<string, string>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly baseDir: string,
    private readonly log: Logger,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    super();
  }

  /** Replaces the set of credentials (from the policy set) and loads them. */
  setCredentials(credentials: LoadedCredential[]): void {
    this.sources = credentials.map(({ credential: c }) => ({
      key: `${c.metadata.tenant}/${c.metadata.name}`,
      header: c.spec.header,
      ...(c.spec.prefix !== undefined ? { prefix: c.spec.prefix } : {}),
      ...('env' in c.spec.source ? { env: c.spec.source.env } : { file: path.resolve(this.baseDir, c.spec.source.file) }),
    }));
    this.reload();
    if (!this.timer && this.sources.some((s) => s.file)) {
      this.timer = setInterval(() => this.pollFiles(), POLL_MS);
      this.timer.unref();
    }
  }

  /** Loaded credentials by `tenant/name`; a missing one means its rules fail closed. */
  current(): ReadonlyMap<string, CredentialValue> {
    return this.values;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private stamp(file: string): string {
    try {
      const st = statSync(file);
      return `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch {
      return 'missing';
    }
  }

  private pollFiles(): void {
    for (const s of this.sources) {
      if (s.file && this.stamp(s.file) !== this.fileStamps.get(s.file)) {
        this.reload();
        this.emit('change');
        return;
      }
    }
  }

  private reload(): void {
    const values = new Map<string, CredentialValue>();
    for (const s of this.sources) {
      const value = this.read(s);
      if (value === undefined) continue;
      values.set(s.key, { header: s.header, ...(s.prefix !== undefined ? { prefix: s.prefix } : {}), value });
    }
    this.values = values;
  }

  private read(s: Source): string | undefined {
    if (s.env !== undefined) {
      const v = this.env[s.env];
      if (v === undefined || v === '') {
        this.log.warn({ credential: s.key, source: `env ${s.env}` }, 'credential unavailable: the environment variable is not set; requests that need it are refused');
        return undefined;
      }
      return v.trim();
    }
    const file = s.file!;
    this.fileStamps.set(file, this.stamp(file));
    try {
      const v = readFileSync(file, 'utf8').trim();
      if (v === '') throw new Error('the file is empty');
      return v;
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      this.log.warn({ credential: s.key, source: `file ${file}`, reason }, 'credential unavailable; requests that need it are refused');
      return undefined;
    }
  }
}
