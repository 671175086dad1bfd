import { ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import * as readline from 'node:readline';

export interface EnvoyProcessOptions {
  bin: string;
  configYaml: string;
  /** Where envoy.yaml is written; created if missing. */
  workDir: string;
  /** The admin `pipe: {path}` from configYaml; used for readiness and admin calls. */
  adminSocketPath: string;
  /** Envoy --log-level; warn keeps test output readable. */
  logLevel?: string;
  extraArgs?: string[];
  onLog?: (line: string) => void;
  /** How long to wait for the admin socket to answer; default 30 s. */
  startTimeoutMs?: number;
}

export interface AdminResponse {
  status: number;
  body: string;
}

const LOG_LINES_KEPT = 200;
const KILL_GRACE_MS = 3000;
const POLL_MS = 50;
// sockaddr_un.sun_path is 108 bytes on Linux including the NUL terminator.
const MAX_UNIX_SOCKET_PATH = 107;

// Envoys must not outlive a crashed test run or demo, so every live child is
// SIGKILLed when this Node process exits, via a single shared listener.
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class EnvoyProcess {
  readonly pid: number;
  readonly adminSocketPath: string;
  /** Exit code, or null when Envoy was ended by a signal. */
  readonly exited: Promise<number | null>;
  private exitInfo: string | undefined;
  private readonly logs: string[] = [];

  constructor(
    private readonly child: ChildProcess,
    opts: EnvoyProcessOptions,
  ) {
    this.pid = child.pid ?? -1;
    this.adminSocketPath = opts.adminSocketPath;
    liveChildren.add(child);
    // e.g. a failed kill(); keep it as a log line rather than crash the host process.
    child.on('error', (err) => this.logs.push(`[exitgate] envoy process error: ${err.message}`));
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        liveChildren.delete(child);
        this.exitInfo = signal ? `signal ${signal}` : `code ${code}`;
        resolve(code);
      });
    });
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      readline.createInterface({ input: stream }).on('line', (line) => {
        this.logs.push(line);
        if (this.logs.length > LOG_LINES_KEPT) this.logs.shift();
        opts.onLog?.(line);
      });
    }
  }

  /** Set once the process has exited, e.g. "code 1" or "signal SIGKILL". */
  get exitStatus(): string | undefined {
    return this.exitInfo;
  }

  recentLogs(): string {
    return this.logs.join('\n');
  }

  /** HTTP GET on the admin unix socket. */
  admin(urlPath: string, timeoutMs = 5000): Promise<AdminResponse> {
    return new Promise((resolve, reject) => {
      const req = http.get({ socketPath: this.adminSocketPath, path: urlPath, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`admin GET ${urlPath} timed out after ${timeoutMs} ms`)));
      req.on('error', reject);
    });
  }

  /**
   * Polls predicate until it is true. A throwing predicate counts as "not
   * yet" (the admin socket may be briefly unavailable); Envoy exiting ends
   * the wait at once, since it can never become true then.
   */
  async waitFor(predicate: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastError = '';
    for (;;) {
      if (this.exitInfo !== undefined) {
        throw new Error(`Envoy exited (${this.exitInfo}) while waiting for ${what}; last logs:\n${this.recentLogs()}`);
      }
      try {
        if (await predicate()) return;
      } catch (err) {
        lastError = err instanceof Error ? err.message : String(err);
      }
      if (Date.now() >= deadline) {
        const detail = lastError ? ` (last error: ${lastError})` : '';
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}; last logs:\n${this.recentLogs()}`);
      }
      await sleep(POLL_MS);
    }
  }

  /** Waits until /ready says LIVE, i.e. Envoy finished initialising (incl. xDS). */
  waitReady(timeoutMs = 30_000): Promise<void> {
    return this.waitFor(
      async () => {
        const res = await this.admin('/ready');
        return res.status === 200 && res.body.trim() === 'LIVE';
      },
      timeoutMs,
      'Envoy /ready to return LIVE',
    );
  }

  /**
   * Counters and gauges by name. filter is an Envoy RE2 regex applied by
   * the admin endpoint itself. Histograms are skipped (not single numbers).
   */
  async stats(filter?: string): Promise<Map<string, number>> {
    const query = filter === undefined ? '' : `&filter=${encodeURIComponent(filter)}`;
    const res = await this.admin(`/stats?format=json${query}`);
    if (res.status !== 200) throw new Error(`admin /stats returned ${res.status}: ${res.body.slice(0, 200)}`);
    const parsed = JSON.parse(res.body) as { stats?: Array<{ name?: unknown; value?: unknown }> };
    const out = new Map<string, number>();
    for (const entry of parsed.stats ?? []) {
      if (typeof entry.name === 'string' && typeof entry.value === 'number') out.set(entry.name, entry.value);
    }
    return out;
  }

  /** SIGTERM, then SIGKILL after a grace period; resolves once exited. */
  async stop(): Promise<void> {
    if (this.exitInfo !== undefined) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), KILL_GRACE_MS);
    try {
      await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Seconds Envoy drains connections of a replaced filter chain (revocation latency). */
export const SIDECAR_DRAIN_SECONDS = 0;

/** Envoy flags every instance gets; see startEnvoy for why. */
function baseArgs(configPath: string, logLevel: string): string[] {
  return [
    '-c', configPath,
    // Several Envoys share this machine; hot restart would make them fight
    // over the same shared-memory base id.
    '--disable-hot-restart',
    '--log-level', logLevel,
    // Revocation must bite (SPEC §6.2): when a policy change revokes access the control plane
    // changes the listener's filter chain, and Envoy drains the old chain's connections, open
    // CONNECT tunnels included. Envoy's default drain is 600 s; a short one closes them promptly.
    '--drain-time-s', String(SIDECAR_DRAIN_SECONDS),
    '--drain-strategy', 'immediate',
  ];
}

/**
 * Writes the config, spawns Envoy and resolves once its admin socket answers
 * HTTP. It does not wait for xDS: use waitReady for that.
 */
export async function startEnvoy(opts: EnvoyProcessOptions): Promise<EnvoyProcess> {
  if (Buffer.byteLength(opts.adminSocketPath) > MAX_UNIX_SOCKET_PATH) {
    throw new Error(`admin socket path is longer than ${MAX_UNIX_SOCKET_PATH} bytes (use a shorter workDir): ${opts.adminSocketPath}`);
  }
  await fs.promises.mkdir(opts.workDir, { recursive: true });
  const configPath = path.join(opts.workDir, 'envoy.yaml');
  await fs.promises.writeFile(configPath, opts.configYaml);
  // A stale socket from an earlier run would make "socket exists" lie.
  await fs.promises.rm(opts.adminSocketPath, { force: true });

  const args = [...baseArgs(configPath, opts.logLevel ?? 'warn'), ...(opts.extraArgs ?? [])];
  const child = spawn(opts.bin, args, { cwd: opts.workDir, stdio: ['ignore', 'pipe', 'pipe'] });
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  if (child.pid === undefined) {
    const err = await spawnError;
    throw new Error(`cannot start Envoy ${opts.bin}: ${err.message}`);
  }

  const envoy = new EnvoyProcess(child, opts);
  try {
    await envoy.waitFor(
      async () => {
        if (!fs.existsSync(opts.adminSocketPath)) return false;
        await envoy.admin('/ready', 1000); // any status: admin is serving
        return true;
      },
      opts.startTimeoutMs ?? 30_000,
      `Envoy admin socket ${opts.adminSocketPath}`,
    );
  } catch (err) {
    await envoy.stop();
    throw new Error(`Envoy failed to start: ${err instanceof Error ? err.message : String(err)}`);
  }
  return envoy;
}

let validateSeq = 0;

/** Runs `envoy --mode validate`; ok is true only when Envoy exits 0. */
export async function validateEnvoyConfig(
  bin: string,
  configYaml: string,
  workDir: string,
): Promise<{ ok: boolean; output: string }> {
  await fs.promises.mkdir(workDir, { recursive: true });
  // Unique name so concurrent validations never read each other's file.
  const file = path.join(workDir, `envoy-validate-${process.pid}-${++validateSeq}.yaml`);
  await fs.promises.writeFile(file, configYaml);
  try {
    return await new Promise((resolve) => {
      execFile(
        bin,
        ['--mode', 'validate', '-c', file, '--disable-hot-restart', '--log-level', 'warn'],
        { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) => resolve({ ok: err === null, output: `${stdout}${stderr}`.trim() }),
      );
    });
  } finally {
    await fs.promises.rm(file, { force: true });
  }
}
