/**
 * `exitgate demo`, run as a user runs it: the built CLI in a child process, with a real Envoy.
 * It must tell the whole story with the expected verdicts, time the live update, exit 0, never
 * print the credential Envoy injects, and leave nothing behind (no Envoy, no temp directory),
 * also when interrupted with Ctrl-C.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'bin', 'exitgate.js');

/**
 * The demo honours a pre-set key (else it generates one), so the test knows the value and can
 * check that it appears nowhere in the output.
 */
const TOKEN_ENV = 'EXITGATE_DEMO_PAGERDUTY_TOKEN';
const TOKEN = `pd-e2e-${randomBytes(16).toString('hex')}`;
const TOKEN_FINGERPRINT = createHash('sha256').update(TOKEN).digest('hex').slice(0, 12);

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function startDemo(args: string[]): Run {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', [TOKEN_ENV]: TOKEN };
  delete env.EXITGATE_DEMO_VERBOSE;
  const child = spawn(process.execPath, [CLI, 'demo', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

async function waitForOutput(run: Run, pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(run.stdout())) {
    if (run.child.exitCode !== null) throw new Error(`demo exited before printing ${pattern}:\n${run.stdout()}\n${run.stderr()}`);
    if (Date.now() > deadline) throw new Error(`demo did not print ${pattern} within ${timeoutMs} ms:\n${run.stdout()}\n${run.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function envoyPid(stdout: string): number {
  const m = /sidecar\s+Envoy [^,]+, pid (\d+),/.exec(stdout);
  if (!m) throw new Error(`no Envoy pid in the demo output:\n${stdout}`);
  return Number(m[1]);
}

function workDir(stdout: string): string {
  const m = /removed (\S*exitgate-demo-\S+)/.exec(stdout);
  if (!m) throw new Error(`the demo did not say which directory it removed:\n${stdout}`);
  return m[1]!;
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** [#, attempt (with PORT for the ephemeral ports), expected, envoy said, verdict, rule/reason]. */
const ROWS: Array<[number, string, string, string | RegExp, string, string]> = [
  [1, 'https://api.datadoghq.test:PORT/api/v1/validate', 'allow', 'CONNECT 200 + GET 200', 'allow', 'oncall-observability/datadog'],
  [2, 'https://http-intake.logs.datadoghq.test:PORT/api/v2/logs', 'allow', 'CONNECT 200 + GET 200', 'allow', 'oncall-observability/datadog'],
  [3, 'https://events.pagerduty.test:PORT/v2/enqueue', 'allow', 'CONNECT 200 + GET 200', 'allow', 'oncall-paging/pagerduty'],
  [4, 'http://status.internal-tools.test:PORT/health', 'allow', 'HTTP 200', 'allow', 'oncall-observability/status-page'],
  // Plain HTTP, port-less: Envoy originates TLS and injects the credential.
  [5, 'POST http://events.pagerduty.test/v2/enqueue', 'allow', 'HTTP 200', 'allow', 'oncall-tools/pagerduty-events'],
  [6, 'https://paste.exfil.test:PORT/upload', 'deny', 'CONNECT 403', 'deny', 'no rule matches'],
  [7, 'POST http://paste.exfil.test/api/paste', 'deny', 'HTTP 403', 'deny', 'no rule matches'],
  [8, 'POST http://paste.exfil.test/v2/enqueue', 'deny', 'HTTP 403', 'deny', 'no rule matches'],
  [9, 'GET http://events.pagerduty.test/v2/enqueue', 'deny', 'HTTP 403', 'deny', 'no rule matches this method and path'],
  [10, 'POST http://events.pagerduty.test/v2/admin', 'deny', 'HTTP 403', 'deny', 'no rule matches this method and path'],
  [11, 'CONNECT api.datadoghq.test:22', 'deny', 'CONNECT 403', 'deny', 'no rule matches'],
  [12, 'CONNECT 127.0.0.2:PORT', 'deny', 'CONNECT 403', 'deny', 'IP literal matches no rule'],
  // The guard's refusal is not a route: Envoy answers it as an unreachable upstream.
  [13, 'CONNECT metrics.datadoghq.test:PORT', 'deny', /CONNECT (503|: closed, no reply)/, 'deny', 'guard: 127.0.0.1 is loopback (127.0.0.0/8)'],
  // Revoked: only the credential rule (plain HTTP, no tunnels) still names the host.
  [14, 'https://events.pagerduty.test:PORT/v2/enqueue', 'deny', 'CONNECT 403', 'deny', 'a CONNECT tunnel cannot carry L7 rules or credentials (use plain HTTP: tls: originate)'],
  [15, 'https://api.datadoghq.test:PORT/api/v1/validate', 'allow', 'CONNECT 200 + GET 200', 'allow', 'oncall-observability/datadog'],
];

function rowPattern([n, attempt, expected, said, verdict, rule]: (typeof ROWS)[number]): RegExp {
  const a = escape(attempt).replace(/PORT/g, '\\d+');
  const st = said instanceof RegExp ? said.source : escape(said);
  return new RegExp(`^ *${n} +${a} +${expected} +${st} +${verdict} ✔ +${escape(rule)}$`, 'm');
}

describe('exitgate demo', () => {
  beforeAll(async () => {
    await new Promise<void>((resolve, reject) => {
      execFile('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, timeout: 180_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`build failed:\n${stdout}${stderr}`)) : resolve(),
      );
    });
  }, 200_000);

  it('--once tells the whole story, every attempt as expected, and leaves nothing running', async () => {
    const run = startDemo(['--once']);
    const code = await run.exited;
    const out = run.stdout();
    expect({ code, stderr: run.stderr() }).toEqual({ code: 0, stderr: '' });

    expect(out).toMatch(/control plane\s+xDS \(ADS\) 127\.0\.0\.1:\d+, admin API http:\/\/127\.0\.0\.1:\d+/);
    expect(out).toMatch(/sidecar\s+Envoy 1\.40\.\d+, pid \d+, node acme\/oncall-assistant\/demo-1, proxy http:\/\/127\.0\.0\.1:\d+/);
    expect(out).toMatch(/^ +#\s+attempt \(what the agent tried\)\s+expected\s+envoy said \(status\)\s+verdict\s+rule\/reason/m);
    for (const row of ROWS) expect(out).toMatch(rowPattern(row));

    // The exfiltration host was never even resolved; the rebinding name was, and went nowhere.
    expect(out).toContain('✔ DNS server never saw a query for paste.exfil.test');
    expect(out).toMatch(/✔ the sidecar looked up metrics\.datadoghq\.test \(\S+\) and got 127\.0\.0\.1/);
    expect(out).toMatch(/✔ connections that reached the admin API on 127\.0\.0\.1:\d+: 0/);
    expect(out).toContain('✔ exitgate check: allow (oncall-observability/datadog-metrics)');

    // The credential: injected by Envoy, shown only as a preview, never sent anywhere else.
    const preview = `${TOKEN.slice(0, 4)}…, ${TOKEN.length} chars, sha256 ${TOKEN_FINGERPRINT}`;
    expect(out).toContain(`secret         pagerduty-key = ${preview} (from ${TOKEN_ENV})`);
    expect(out).toMatch(/oncall-tools\/pagerduty-events +events\.pagerduty\.test +port \d+ +\(plain HTTP in, Envoy originates TLS; POST \/v2\/enqueue only; Envoy injects pagerduty-key\)/);
    expect(out).toMatch(/✔ plain HTTP from the agent; Envoy originated TLS to port \d+, verified against the demo CA, answered by the tls-upstream/);
    expect(out).toContain(`✔ the upstream received the key Envoy injected (Token token=${preview}): the agent never held it`);
    expect(out).toContain("✔ the agent's own Authorization header (Token token=stolen-guess) never arrived");
    expect(out).toContain('✔ the key never went anywhere but events.pagerduty.test (1 request in this run carried it)');
    expect(out.match(/✔ nothing reached any upstream/g)).toHaveLength(3);
    expect(out).not.toContain(TOKEN);
    expect(out).not.toContain(TOKEN.slice(0, 12));
    expect(run.stderr()).not.toContain(TOKEN);

    const pid = envoyPid(out);
    const live = /revoked oncall-paging\/pagerduty: next attempt refused after (\d+) ms; Envoy pid (\d+) unchanged/.exec(out);
    expect(live).not.toBeNull();
    expect(Number(live![1])).toBeLessThan(5000);
    expect(Number(live![2])).toBe(pid);
    expect(out).toContain('15/15 attempts as expected; exitgate check agreed with Envoy on every attempt');

    expect(out).not.toMatch(/✘|MISMATCH|DISAGREEMENT/);
    expect(out).not.toContain('\x1b['); // not a TTY (and NO_COLOR): no colour codes
    expect(out).not.toContain('Press Ctrl-C'); // --once does not wait

    expect(isRunning(pid)).toBe(false);
    expect(fs.existsSync(workDir(out))).toBe(false);
  }, 120_000);

  it('without --once, prints how to try it by hand, waits for Ctrl-C, then stops everything', async () => {
    const run = startDemo([]);
    try {
      await waitForOutput(run, /Press Ctrl-C to stop\./, 90_000);
      const out = run.stdout();
      const pid = envoyPid(out);
      expect(isRunning(pid)).toBe(true);
      expect(out).toMatch(/curl --cacert \S+\/ca\/ca\.crt -x http:\/\/127\.0\.0\.1:\d+ https:\/\/api\.datadoghq\.test:\d+\//);
      expect(out).toMatch(/check --policies \S+\/policies --node acme\/oncall-assistant\/demo-1 https:\/\/events\.pagerduty\.test:\d+\//);
      expect(out).toMatch(/curl -x http:\/\/127\.0\.0\.1:\d+ -X POST -H 'Authorization: Token token=stolen-guess' -d '\{\}' http:\/\/events\.pagerduty\.test\/v2\/enqueue/);
      expect(out).not.toContain(TOKEN);
      // Still serving while it waits: the CA file the instructions name exists.
      const ca = /--cacert (\S+)/.exec(out)![1]!;
      expect(fs.existsSync(ca)).toBe(true);

      run.child.kill('SIGINT');
      expect(await run.exited).toBe(0);
      expect(isRunning(pid)).toBe(false);
      expect(fs.existsSync(workDir(run.stdout()))).toBe(false);
      expect(fs.existsSync(ca)).toBe(false);
    } finally {
      if (run.child.exitCode === null) run.child.kill('SIGKILL');
    }
  }, 120_000);

  it('Ctrl-C during the run stops Envoy and cleans up', async () => {
    const run = startDemo([]);
    try {
      // The sidecar line is printed just before the attacks start.
      await waitForOutput(run, /sidecar\s+Envoy [^,]+, pid \d+,/, 90_000);
      const pid = envoyPid(run.stdout());
      run.child.kill('SIGINT');
      const code = await run.exited;
      // 130 when interrupted mid-run; 0 if the run had already finished and was waiting.
      expect([130, 0]).toContain(code);
      expect(run.stdout()).toMatch(/stopped Envoy \(pid \d+\), the control plane, DNS and upstreams/);
      expect(isRunning(pid)).toBe(false);
      expect(fs.existsSync(workDir(run.stdout()))).toBe(false);
    } finally {
      if (run.child.exitCode === null) run.child.kill('SIGKILL');
    }
  }, 120_000);
});
