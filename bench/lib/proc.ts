/**
 * Process helpers for the benchmark: spawn with bounded waits, read a process's memory and CPU
 * from /proc, and stop only the processes this benchmark started (by pid, never by name).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as readline from 'node:readline';

const CLK_TCK = 100; // Linux USER_HZ

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Monotonic time in ms, comparable across processes on this machine (CLOCK_MONOTONIC). */
export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/** Resident memory of a process in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : NaN;
}

/** User + system CPU time of a process (all its threads) in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

export interface Child {
  proc: ChildProcess;
  pid: number;
  lines: string[];
  /** Resolves with the first output line matching re (stdout or stderr), or rejects after timeoutMs. */
  waitLine(re: RegExp, timeoutMs: number): Promise<string>;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** Spawns a process, keeping its last output lines; stop() sends SIGTERM then SIGKILL to it alone. */
export function startChild(cmd: string, args: string[], opts: SpawnOptions & { keepLines?: number; onLine?: (l: string) => void } = {}): Child {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  if (proc.pid === undefined) throw new Error(`cannot start ${cmd}`);
  live.add(proc);
  const lines: string[] = [];
  const keep = opts.keepLines ?? 400;
  const waiters: Array<{ re: RegExp; resolve: (l: string) => void }> = [];
  let exited: string | undefined;
  const exitWaiters: Array<() => void> = [];
  proc.once('exit', (code, signal) => {
    live.delete(proc);
    exited = signal ? `signal ${signal}` : `code ${code}`;
    for (const w of exitWaiters.splice(0)) w();
  });
  for (const stream of [proc.stdout, proc.stderr]) {
    if (!stream) continue;
    readline.createInterface({ input: stream }).on('line', (line) => {
      lines.push(line);
      if (lines.length > keep) lines.shift();
      opts.onLine?.(line);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i]!.re.test(line)) waiters.splice(i, 1)[0]!.resolve(line);
      }
    });
  }
  return {
    proc,
    pid: proc.pid,
    lines,
    waitLine(re, timeoutMs) {
      const seen = lines.find((l) => re.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${cmd}: no output matching ${re} within ${timeoutMs} ms${exited ? ` (exited: ${exited})` : ''}; last output:\n${lines.slice(-20).join('\n')}`)), timeoutMs);
        const onExit = () => {
          clearTimeout(timer);
          reject(new Error(`${cmd} exited (${exited}) before printing ${re}; last output:\n${lines.slice(-20).join('\n')}`));
        };
        if (exited) return onExit();
        exitWaiters.push(onExit);
        waiters.push({
          re,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
      });
    },
    async stop() {
      if (exited) return;
      const done = new Promise<void>((r) => exitWaiters.push(r));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await done;
      clearTimeout(timer);
    },
  };
}

/** Runs a command to completion (bounded), returning its output. */
export function run(cmd: string, args: string[], opts: SpawnOptions & { timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    live.add(proc);
    let stdout = '';
    let stderr = '';
    proc.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    proc.on('error', (err) => {
      clearTimeout(timer);
      live.delete(proc);
      reject(err);
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      live.delete(proc);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Polls cond every intervalMs until true, or throws after timeoutMs. */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
