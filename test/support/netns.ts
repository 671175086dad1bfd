/**
 * Network namespaces for tests that must not be able to send a packet anywhere but loopback
 * (ARCHITECTURE.md, "Tests that touch the network"). Linux and root only; `sealedWorldSupport()`
 * says why not elsewhere, so suites can skip with a printed reason.
 *
 * - Namespaces are named `eg-<role>-<pid36>x<rand>`: the creating pid lets a later run remove the
 *   namespaces of a crashed one (and only those: other runs on the same machine keep theirs).
 * - Every namespace this process creates is deleted in `deleteNamespaces()` (call it from
 *   afterAll) and, as a last resort, when the process exits.
 * - `installRootNamespaceTripwire()` makes any TCP connect or unmarked UDP send from this
 *   process to a non-loopback address throw, so a harness bug cannot reach the real network from
 *   the root namespace: traffic to namespace addresses must use sockets created inside them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';

export const IP_BIN = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => fs.existsSync(p)) ?? 'ip';

const created = new Set<string>();
let exitHookInstalled = false;

/** Null when this machine can run sealed (namespace) tests, else the reason it cannot. */
export function sealedWorldSupport(): string | null {
  if (process.platform !== 'linux') return `needs Linux network namespaces (this is ${process.platform})`;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'needs root to create network namespaces (run as root, as CI does)';
  const probe = spawnSync(IP_BIN, ['-V'], { encoding: 'utf8' });
  if (probe.status !== 0) return 'needs iproute2 (`ip`); install the Debian package iproute2';
  const name = `eg-probe-${process.pid.toString(36)}x${randomBytes(2).toString('hex')}`;
  const add = spawnSync(IP_BIN, ['netns', 'add', name], { encoding: 'utf8' });
  if (add.status !== 0) return `cannot create a network namespace: ${(add.stderr || add.stdout).trim()}`;
  const veth = spawnSync(IP_BIN, ['-n', name, 'link', 'add', 'egp0', 'type', 'veth', 'peer', 'name', 'egp1'], { encoding: 'utf8' });
  spawnSync(IP_BIN, ['netns', 'del', name]);
  if (veth.status !== 0) return `cannot create veth pairs: ${(veth.stderr || veth.stdout).trim()}`;
  return null;
}

function run(args: string[]): string {
  try {
    return execFileSync(IP_BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

/** `ip -n <ns> ...` */
export function ipIn(ns: string, ...args: string[]): string {
  return run(['-n', ns, ...args]);
}

/** Runs a command inside the namespace (`ip netns exec`), synchronously; returns stdout. */
export function execIn(ns: string, cmd: string, args: string[]): string {
  return run(['netns', 'exec', ns, cmd, ...args]);
}

/** Writes a sysctl inside the namespace (/proc/sys/net is per namespace). */
export function sysctlIn(ns: string, key: string, value: string): void {
  execIn(ns, '/bin/sh', ['-c', `echo ${value} > /proc/sys/${key.replace(/\./g, '/')}`]);
}

export function readSysctlIn(ns: string, key: string): string {
  return execIn(ns, '/bin/cat', [`/proc/sys/${key.replace(/\./g, '/')}`]).trim();
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes `eg-*` namespaces left by test processes that no longer run. */
export function sweepStaleNamespaces(): string[] {
  const removed: string[] = [];
  let list = '';
  try {
    list = run(['netns', 'list']);
  } catch {
    return removed;
  }
  for (const line of list.split('\n')) {
    const name = line.trim().split(/\s+/)[0] ?? '';
    const m = /^eg-[a-z]+-([0-9a-z]+)x[0-9a-f]+$/.exec(name);
    if (!m) continue;
    const pid = parseInt(m[1]!, 36);
    if (pid === process.pid || pidAlive(pid)) continue;
    try {
      run(['netns', 'del', name]);
      removed.push(name);
    } catch {
      // someone else removed it meanwhile
    }
  }
  return removed;
}

/** A new namespace with `lo` up, IPv4/IPv6 forwarding off. Deleted by deleteNamespaces(). */
export function createNamespace(role: string): string {
  const name = `eg-${role}-${process.pid.toString(36)}x${randomBytes(3).toString('hex')}`;
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => deleteNamespaces());
  }
  run(['netns', 'add', name]);
  created.add(name);
  ipIn(name, 'link', 'set', 'lo', 'up');
  // A namespace never routes between its interfaces: it is an end, not a router.
  sysctlIn(name, 'net.ipv4.ip_forward', '0');
  sysctlIn(name, 'net.ipv6.conf.all.forwarding', '0');
  return name;
}

export function deleteNamespaces(): void {
  for (const name of [...created]) {
    spawnSync(IP_BIN, ['netns', 'del', name]);
    created.delete(name);
  }
}

/**
 * A veth pair between two namespaces, created inside `a` with its peer placed in `b` (it never
 * exists in the root namespace), IPv6 disabled on both ends (no link-local side door), IPv4
 * addresses as given (CIDR), both up. No routes are added beyond the connected subnet.
 */
export function vethPair(a: { ns: string; ifname: string; cidr: string }, b: { ns: string; ifname: string; cidr: string }): void {
  ipIn(a.ns, 'link', 'add', a.ifname, 'type', 'veth', 'peer', 'name', b.ifname, 'netns', b.ns);
  for (const end of [a, b]) {
    sysctlIn(end.ns, `net.ipv6.conf.${end.ifname}.disable_ipv6`, '1');
    ipIn(end.ns, 'addr', 'add', end.cidr, 'dev', end.ifname);
    ipIn(end.ns, 'link', 'set', end.ifname, 'up');
  }
}

/** Puts addresses on the namespace's own `lo` (the kernel here may lack dummy interfaces). */
export function addLoopbackAddresses(ns: string, addresses: string[]): void {
  for (const a of addresses) {
    if (a.includes(':')) ipIn(ns, '-6', 'addr', 'add', `${a}/128`, 'dev', 'lo', 'nodad');
    else ipIn(ns, 'addr', 'add', `${a}/32`, 'dev', 'lo');
  }
}

/** Routes of a namespace, both families, one per line (for reports and assertions). */
export function routesOf(ns: string): string[] {
  const v4 = ipIn(ns, '-4', 'route', 'show', 'table', 'all');
  const v6 = ipIn(ns, '-6', 'route', 'show', 'table', 'all');
  return `${v4}\n${v6}`.split('\n').map((l) => l.trim()).filter((l) => l !== '');
}

// ---------------------------------------------------------------------------------------------
// The tripwire

/** Marks a socket that was created inside a namespace (received from a broker). */
export const IN_NAMESPACE = Symbol.for('exitgate.test.inNamespace');

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  return mapped !== null && mapped[1]!.startsWith('127.');
}

let tripwireInstalled = false;
export const tripwireRefusals: string[] = [];

/**
 * From now on, this process refuses (throws) any TCP connect to a non-loopback address, and any
 * UDP send to one from a socket not created inside a test namespace. The root namespace of a CI
 * machine has a default route; this makes a harness bug an error instead of a packet.
 */
export function installRootNamespaceTripwire(): void {
  if (tripwireInstalled) return;
  tripwireInstalled = true;
  const proto = net.Socket.prototype as unknown as { connect: (...args: unknown[]) => unknown };
  const originalConnect = proto.connect;
  proto.connect = function patchedConnect(this: net.Socket, ...args: unknown[]): unknown {
    const first = args[0];
    let host: string | undefined;
    let isPath = false;
    if (Array.isArray(first)) {
      // internal normalized form [options, cb]
      const o = first[0] as { path?: string; host?: string } | undefined;
      isPath = typeof o?.path === 'string';
      host = o?.host;
    } else if (typeof first === 'object' && first !== null) {
      const o = first as { path?: string; host?: string };
      isPath = typeof o.path === 'string';
      host = o.host;
    } else if (typeof first === 'string' && !/^\d+$/.test(first)) {
      isPath = true; // connect(path)
    } else {
      host = typeof args[1] === 'string' ? (args[1] as string) : undefined;
    }
    if (!isPath && !isLoopbackHost(host ?? 'localhost')) {
      const msg = `root-namespace tripwire: refused a TCP connect from the test process to ${host}; only loopback is allowed here (use a namespace broker)`;
      tripwireRefusals.push(msg);
      throw new Error(msg);
    }
    return originalConnect.apply(this, args);
  };
  const dproto = dgram.Socket.prototype as unknown as { send: (...args: unknown[]) => unknown };
  const originalSend = dproto.send;
  dproto.send = function patchedSend(this: dgram.Socket & { [IN_NAMESPACE]?: string }, ...args: unknown[]): unknown {
    if (this[IN_NAMESPACE] === undefined) {
      const address = args.find((a, i) => i > 0 && typeof a === 'string') as string | undefined;
      if (address !== undefined && !isLoopbackHost(address)) {
        const msg = `root-namespace tripwire: refused a UDP send from the test process to ${address}`;
        tripwireRefusals.push(msg);
        throw new Error(msg);
      }
    }
    return originalSend.apply(this, args);
  };
}
