/**
 * The data-plane peers, each a separate process on a loopback port with the same allowlist:
 * Squid (Debian's package; dstdomain ACL, no caching, names from a private hosts_file) and
 * Smokescreen (stripe/smokescreen, built from its Go module; ACL default rule, names from the
 * benchmark's DNS server, the upstream's /32 exempted from its private-range block).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { freePort } from '../../src/demo/free-port';
import { sleep } from '../lib/proc';

export interface Proxy {
  name: string;
  port: number;
  stop(): Promise<void>;
}

const procs = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of procs) p.kill('SIGKILL');
});

function launch(cmd: string, args: string[], logFile: string): ChildProcess {
  const fd = fs.openSync(logFile, 'a');
  const p = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  procs.add(p);
  p.once('exit', () => procs.delete(p));
  return p;
}

async function waitListening(host: string, port: number, p: ChildProcess, what: string, logFile: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (p.exitCode !== null) throw new Error(`${what} exited (${p.exitCode}): ${fs.readFileSync(logFile, 'utf8').slice(-1500)}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not listen on ${port} within ${timeoutMs} ms: ${fs.readFileSync(logFile, 'utf8').slice(-1500)}`);
    await sleep(100);
  }
}

async function stopProc(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const done = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 5000);
  await done;
  clearTimeout(t);
}

export async function startSquid(o: { dir: string; name: string; hosts: string[]; upstreamIp: string }): Promise<Proxy> {
  fs.mkdirSync(o.dir, { recursive: true });
  // Squid drops to its unprivileged user: it must be able to write its logs and pid file here.
  fs.chmodSync(o.dir, 0o777);
  const port = await freePort();
  fs.writeFileSync(path.join(o.dir, 'hosts'), o.hosts.map((h) => `${o.upstreamIp} ${h}`).join('\n') + '\n');
  fs.writeFileSync(path.join(o.dir, 'allowed.txt'), o.hosts.join('\n') + '\n');
  const conf = [
    `http_port 127.0.0.1:${port}`,
    `pid_filename ${o.dir}/squid.pid`,
    `cache_log ${o.dir}/cache.log`,
    // Every proxy records its decisions: Squid's access log (its default, via its log daemon),
    // Smokescreen's per-request log line, exitgate's access-log stream to the control plane.
    `access_log daemon:${o.dir}/access.log squid`,
    'cache deny all',
    'cache_mem 8 MB',
    `hosts_file ${o.dir}/hosts`,
    // No DNS leaves the machine: every name is in hosts_file; nothing listens on 127.0.0.1:53.
    'dns_nameservers 127.0.0.1',
    `acl allowed dstdomain "${o.dir}/allowed.txt"`,
    'http_access allow allowed',
    'http_access deny all',
    `coredump_dir ${o.dir}`,
    'netdb_filename none',
    'pinger_enable off',
    'shutdown_lifetime 0 seconds',
    'visible_hostname bench-squid',
    'via off',
    'forwarded_for delete',
    'max_filedescriptors 16384',
  ].join('\n');
  const confPath = path.join(o.dir, 'squid.conf');
  fs.writeFileSync(confPath, conf + '\n');
  const check = (() => {
    try {
      execFileSync('squid', ['-k', 'parse', '-f', confPath], { stdio: 'pipe' });
      return '';
    } catch (err) {
      return String((err as { stderr?: Buffer }).stderr ?? err);
    }
  })();
  if (check) throw new Error(`squid config: ${check.slice(-1500)}`);
  const log = path.join(o.dir, 'stderr.log');
  const p = launch('squid', ['-N', '-f', confPath], log);
  await waitListening('127.0.0.1', port, p, `squid ${o.name}`, log);
  return { name: o.name, port, stop: () => stopProc(p) };
}

export async function startSmokescreen(o: { bin: string; dir: string; name: string; hosts: string[]; upstreamIp: string; dns: { host: string; port: number } }): Promise<Proxy> {
  fs.mkdirSync(o.dir, { recursive: true });
  const port = await freePort();
  const statsd = await freePort();
  const acl = ['version: v1', 'services: []', 'default:', '  project: bench', '  action: enforce', '  allowed_domains:', ...o.hosts.map((h) => `    - ${h}`)].join('\n');
  fs.writeFileSync(path.join(o.dir, 'acl.yaml'), acl + '\n');
  const config = [
    'allow_missing_role: true',
    `acl_file: ${o.dir}/acl.yaml`,
    `allow_ranges: ["${o.upstreamIp}/32"]`,
    `resolver_addresses: ["${o.dns.host}:${o.dns.port}"]`,
    // Metrics go to a loopback port nothing listens on.
    `statsd_address: "127.0.0.1:${statsd}"`,
  ].join('\n');
  fs.writeFileSync(path.join(o.dir, 'config.yaml'), config + '\n');
  const log = path.join(o.dir, 'smokescreen.log');
  const p = launch(o.bin, ['--config-file', path.join(o.dir, 'config.yaml'), '--listen-ip', '127.0.0.1', '--listen-port', String(port)], log);
  await waitListening('127.0.0.1', port, p, `smokescreen ${o.name}`, log);
  return { name: o.name, port, stop: () => stopProc(p) };
}

export async function startUpstream(bin: string, listen: string, logFile: string): Promise<{ stop(): Promise<void> }> {
  const p = launch(bin, ['-listen', listen], logFile);
  const [host, port] = listen.split(':');
  await waitListening(host!, Number(port), p, 'upstream', logFile);
  return { stop: () => stopProc(p) };
}
