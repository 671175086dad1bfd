/**
 * Per-agent drain epochs (see translate/options.ts `drainEpoch`), kept across control-plane
 * restarts: a restarted control plane must produce the very listener a sidecar already holds
 * (SPEC §6.4: nothing is re-sent), so it must remember how many revocations each agent has seen,
 * and the access those epochs were computed from (so a revocation made while it was down still
 * drains). Stored as one JSON file in the control plane's state directory (`serve --state-dir`),
 * written atomically after each change; when it cannot be written, the epochs live in memory only
 * and a warning says so.
 */
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { atomicWriteFile } from './atomic-write';
import type { AccessKeys } from '../ir/revocation';
import type { Logger } from '../util/logger';

export interface DrainState {
  epoch: number;
  keys: AccessKeys;
}

/** What the snapshot cache needs: a per-agent state it reads and replaces. */
export interface DrainEpochs {
  get(agentKey: string): DrainState | undefined;
  set(agentKey: string, state: DrainState): void;
}

export class InMemoryDrainEpochs implements DrainEpochs {
  protected readonly states = new Map<string, DrainState>();
  get(agentKey: string): DrainState | undefined {
    return this.states.get(agentKey);
  }
  set(agentKey: string, state: DrainState): void {
    this.states.set(agentKey, state);
  }
}

export class FileDrainEpochs extends InMemoryDrainEpochs {
  private writing: Promise<void> = Promise.resolve();
  /** A write is queued that has not yet taken its snapshot of the states. */
  private queued = false;
  private warned = false;

  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {
    super();
    try {
      mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    } catch {
      // reported on the first write
    }
    try {
      const data = JSON.parse(readFileSync(file, 'utf8')) as { agents?: Record<string, DrainState> };
      for (const [k, v] of Object.entries(data.agents ?? {})) this.states.set(k, v);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ file, err: (err as Error).message }, 'drain epochs unreadable; starting afresh');
    }
  }

  /**
   * The file in a state directory; by default a directory per policy directory under the system's
   * temporary directory (kept across restarts of the control plane on one machine). Never inside the
   * policy directory: that may be read-only, and its content is the operator's.
   */
  static pathIn(stateDir: string | undefined, policiesDir: string): string {
    const dir = stateDir ?? path.join(os.tmpdir(), 'exitgate-state', createHash('sha256').update(path.resolve(policiesDir)).digest('hex').slice(0, 16));
    return path.join(dir, 'drain-epochs.json');
  }

  /**
   * Records a state and queues a write of the file. Writes are coalesced: the states are serialized
   * when the queued write starts, so the many `set`s of one rebuild (a tenant-wide change sets
   * every agent of the tenant) cost one serialization and one write, not one each.
   */
  override set(agentKey: string, state: DrainState): void {
    super.set(agentKey, state);
    if (this.queued) return;
    this.queued = true;
    this.writing = this.writing.then(() => {
      this.queued = false;
      const text = JSON.stringify({ version: 1, agents: Object.fromEntries(this.states) });
      return atomicWriteFile(this.file, text).catch((err: Error) => {
        if (!this.warned) this.log.warn({ file: this.file, err: err.message }, 'cannot persist drain epochs: after a restart, sidecars may be re-sent their listener (and their connections drained)');
        this.warned = true;
      });
    });
  }

  /** Resolves once pending writes are done (tests, shutdown). */
  flush(): Promise<void> {
    return this.writing;
  }
}
