/**
 * A socket broker inside a network namespace. Node cannot switch namespaces per socket, but a
 * socket stays in the namespace it was created in, and Node can pass socket handles between
 * processes over its IPC channel. So a tiny child process, started with `ip netns exec`, creates
 * sockets inside the namespace (listening servers, UDP sockets, outgoing connections) and hands
 * them to the test process, which then runs real servers and clients on them in-process.
 *
 * The agent's broker also drops root (setuid nobody) before doing anything: like a real agent it
 * cannot add routes, open raw sockets, or open the sidecar's admin socket (mode 0600, root).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { IN_NAMESPACE, IP_BIN } from './netns';

/** The broker program: plain JavaScript, written to a world-readable file at run time. */
const BROKER_SOURCE = String.raw`'use strict';
const net = require('net');
const dgram = require('dgram');
const dns = require('dns');
const fs = require('fs');
const os = require('os');
const childProcess = require('child_process');
const uid = process.argv[2] === '-' ? null : Number(process.argv[2]);
if (uid !== null) {
  process.setgroups([]);
  process.setgid(uid);
  process.setuid(uid);
}
process.on('disconnect', () => process.exit(0));
const held = new Map();
let heldSeq = 0;
function reply(id, body, handle) {
  if (handle) process.send(Object.assign({ id }, body), handle, { keepOpen: false }, () => { if (handle.close && !(handle instanceof net.Socket)) try { handle.close(); } catch (e) {} });
  else process.send(Object.assign({ id }, body));
}
function errBody(e) { return { error: (e && (e.code || e.message)) || String(e) }; }
const ops = {
  info(m) {
    reply(m.id, { uid: process.getuid(), gid: process.getgid(), interfaces: os.networkInterfaces() });
  },
  // Runs a program as the broker's user inside its namespace (e.g. the agent trying \`ip route add\`).
  run(m) {
    const r = childProcess.spawnSync(m.cmd, m.args, { encoding: 'utf8', timeout: 5000 });
    reply(m.id, { status: r.status, stdout: r.stdout, stderr: r.stderr, error: r.error ? String(r.error.code || r.error.message) : undefined });
  },
  tcpListen(m) {
    const s = net.createServer();
    s.once('error', (e) => reply(m.id, errBody(e)));
    s.listen({ host: m.host, port: m.port, backlog: m.backlog || 511, ipv6Only: !!m.ipv6Only }, () => reply(m.id, { port: s.address().port }, s));
  },
  udpBind(m) {
    const s = dgram.createSocket(net.isIPv6(m.host) ? 'udp6' : 'udp4');
    s.once('error', (e) => reply(m.id, errBody(e)));
    s.bind(m.port, m.host, () => reply(m.id, { port: s.address().port }, s));
  },
  tcpConnect(m) {
    const s = net.connect({ host: m.host, port: m.port, family: m.family || 0 });
    let done = false;
    const t = setTimeout(() => { if (done) return; done = true; s.destroy(); reply(m.id, { error: 'ETIMEDOUT' }); }, m.timeoutMs || 3000);
    s.once('connect', () => { if (done) return; done = true; clearTimeout(t); s.pause(); reply(m.id, { local: s.localAddress + ':' + s.localPort }, s); });
    s.once('error', (e) => { if (done) return; done = true; clearTimeout(t); reply(m.id, errBody(e)); });
  },
  unixConnect(m) {
    const s = net.connect({ path: m.path });
    s.once('connect', () => { s.destroy(); reply(m.id, { connected: true }); });
    s.once('error', (e) => reply(m.id, errBody(e)));
  },
  udpExchange(m) {
    let s;
    try { s = dgram.createSocket(net.isIPv6(m.host) ? 'udp6' : 'udp4'); } catch (e) { return reply(m.id, errBody(e)); }
    let done = false;
    const finish = (body) => { if (done) return; done = true; clearTimeout(t); try { s.close(); } catch (e) {} reply(m.id, body); };
    const t = setTimeout(() => finish({ error: 'ETIMEDOUT' }), m.timeoutMs || 1500);
    s.on('error', (e) => finish(errBody(e)));
    s.on('message', (msg, rinfo) => finish({ reply: msg.toString('base64'), from: rinfo.address + ':' + rinfo.port }));
    s.send(Buffer.from(m.payload, 'base64'), m.port, m.host, (e) => { if (e) finish(errBody(e)); });
  },
  resolve(m) {
    const r = new dns.Resolver({ timeout: m.timeoutMs || 1000, tries: 1 });
    if (m.server) r.setServers([m.server]);
    let done = false;
    const t = setTimeout(() => { if (!done) { done = true; r.cancel(); reply(m.id, { error: 'ETIMEOUT' }); } }, (m.timeoutMs || 1000) + 1000);
    r.resolve4(m.name, (e, addrs) => { if (done) return; done = true; clearTimeout(t); reply(m.id, e ? errBody(e) : { addresses: addrs }); });
  },
  lookup(m) {
    dns.lookup(m.name, { all: true }, (e, addrs) => reply(m.id, e ? errBody(e) : { addresses: addrs }));
  },
  // Many connections at once, each sending payload; answers with the first status line of each.
  flood(m) {
    const results = [];
    let pending = m.count;
    const started = Date.now();
    const one = () => {
      const s = net.connect({ host: m.host, port: m.port });
      let buf = '';
      let settled = false;
      const end = (r) => { if (settled) return; settled = true; s.destroy(); results.push(r); if (--pending === 0) reply(m.id, { results, ms: Date.now() - started }); };
      s.setTimeout(m.timeoutMs || 10000, () => end('timeout'));
      s.on('connect', () => s.write(m.payload));
      s.on('data', (d) => { buf += d.toString('latin1'); const i = buf.indexOf('\r\n'); if (i >= 0) end(buf.slice(0, i)); });
      s.on('error', (e) => end('error:' + (e.code || e.message)));
      s.on('close', () => end('closed'));
    };
    for (let i = 0; i < m.count; i++) one();
  },
  // Slow clients: connect, send the first bytes of a request, then keep the connection open.
  slowStart(m) {
    const key = ++heldSeq;
    const group = { sockets: [], closedByPeer: 0, connected: 0, errors: 0 };
    held.set(key, group);
    let pending = m.count;
    for (let i = 0; i < m.count; i++) {
      const s = net.connect({ host: m.host, port: m.port });
      group.sockets.push(s);
      s.on('connect', () => { group.connected++; s.write(m.payload); if (--pending === 0) reply(m.id, { key, connected: group.connected, errors: group.errors }); });
      s.on('error', () => { group.errors++; if (--pending === 0) reply(m.id, { key, connected: group.connected, errors: group.errors }); });
      s.on('close', () => { if (!s.destroyedByUs) group.closedByPeer++; });
      s.on('data', () => undefined);
    }
  },
  slowTrickle(m) {
    const group = held.get(m.key);
    if (!group) return reply(m.id, { error: 'no such group' });
    let writable = 0;
    for (const s of group.sockets) if (!s.destroyed) { s.write(m.payload); writable++; }
    reply(m.id, { writable, closedByPeer: group.closedByPeer });
  },
  slowStop(m) {
    const group = held.get(m.key);
    if (!group) return reply(m.id, { error: 'no such group' });
    held.delete(m.key);
    let open = 0;
    for (const s of group.sockets) { if (!s.destroyed) open++; s.destroyedByUs = true; s.destroy(); }
    reply(m.id, { open, closedByPeer: group.closedByPeer, connected: group.connected, errors: group.errors });
  },
};
process.on('message', (m) => {
  const op = ops[m.op];
  if (!op) return reply(m.id, { error: 'unknown op ' + m.op });
  try { op(m); } catch (e) { reply(m.id, errBody(e)); }
});
process.send({ ready: true, uid: process.getuid() });
`;

/**
 * Writes the broker program to a fresh directory any user can read (the agent's broker runs as
 * nobody). The caller removes it once the broker has started: Node has read it by then.
 */
function writeBroker(): { file: string; remove: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eg-broker-'));
  fs.chmodSync(dir, 0o755);
  const file = path.join(dir, 'broker.js');
  fs.writeFileSync(file, BROKER_SOURCE, { mode: 0o644 });
  return { file, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export interface BrokerReply {
  id: number;
  error?: string;
  [key: string]: unknown;
}

export interface FloodResult {
  results: string[];
  ms: number;
}

/** A broker process inside one namespace. */
export class NetnsBroker {
  private seq = 0;
  private readonly pending = new Map<number, (m: BrokerReply, handle: unknown) => void>();
  private closed = false;

  private constructor(
    readonly ns: string,
    private readonly child: ChildProcess,
    readonly uid: number,
  ) {
    child.on('message', (m: BrokerReply, handle: unknown) => {
      const cb = this.pending.get(m.id);
      if (!cb) return;
      this.pending.delete(m.id);
      cb(m, handle);
    });
    child.once('exit', () => {
      this.closed = true;
      for (const cb of this.pending.values()) cb({ id: -1, error: 'broker exited' }, undefined);
      this.pending.clear();
    });
  }

  /** Starts a broker in `ns`; with `uid`, it drops to that user (and no groups) first. */
  static async start(ns: string, opts: { uid?: number } = {}): Promise<NetnsBroker> {
    const program = writeBroker();
    const child = spawn(IP_BIN, ['netns', 'exec', ns, process.execPath, program.file, opts.uid === undefined ? '-' : String(opts.uid)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const ready = await new Promise<{ uid: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`broker in ${ns} did not start within 10 s`)), 10_000);
      child.once('error', (e) => reject(e));
      child.once('exit', (code) => reject(new Error(`broker in ${ns} exited with ${code}`)));
      child.once('message', (m: { ready?: boolean; uid: number }) => {
        clearTimeout(timer);
        if (m.ready) resolve(m);
      });
    }).finally(() => program.remove());
    return new NetnsBroker(ns, child, ready.uid);
  }

  call(op: string, args: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<{ reply: BrokerReply; handle: unknown }> {
    if (this.closed) return Promise.reject(new Error(`broker in ${this.ns} is gone`));
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`broker ${op} in ${this.ns} timed out`));
      }, timeoutMs);
      this.pending.set(id, (reply, handle) => {
        clearTimeout(timer);
        resolve({ reply, handle });
      });
      this.child.send({ id, op, ...args });
    });
  }

  /** A listening TCP server created inside the namespace. */
  async listenTcp(host: string, port: number, opts: { ipv6Only?: boolean } = {}): Promise<net.Server> {
    const { reply, handle } = await this.call('tcpListen', { host, port, ...opts });
    if (reply.error || !(handle instanceof net.Server)) throw new Error(`cannot listen on ${host}:${port} in ${this.ns}: ${reply.error ?? 'no handle'}`);
    return handle;
  }

  /** A bound UDP socket created inside the namespace. */
  async bindUdp(host: string, port: number): Promise<dgram.Socket> {
    const { reply, handle } = await this.call('udpBind', { host, port });
    if (reply.error || !(handle instanceof dgram.Socket)) throw new Error(`cannot bind udp ${host}:${port} in ${this.ns}: ${reply.error ?? 'no handle'}`);
    (handle as dgram.Socket & { [IN_NAMESPACE]?: string })[IN_NAMESPACE] = this.ns;
    return handle;
  }

  /**
   * A TCP connection made from inside the namespace: the socket, or the error code the
   * namespace's network gave (ENETUNREACH, ECONNREFUSED, ETIMEDOUT...).
   */
  async connectTcp(host: string, port: number, timeoutMs = 3000): Promise<{ socket?: net.Socket; error?: string }> {
    const { reply, handle } = await this.call('tcpConnect', { host, port, timeoutMs });
    if (reply.error) return { error: reply.error };
    if (!(handle instanceof net.Socket)) return { error: 'no handle' };
    (handle as net.Socket & { [IN_NAMESPACE]?: string })[IN_NAMESPACE] = this.ns;
    return { socket: handle };
  }

  async unixConnect(socketPath: string): Promise<{ connected: boolean; error?: string }> {
    const { reply } = await this.call('unixConnect', { path: socketPath });
    return { connected: reply.connected === true, ...(reply.error ? { error: reply.error } : {}) };
  }

  async udpExchange(host: string, port: number, payload: Buffer, timeoutMs = 1500): Promise<{ reply?: Buffer; error?: string }> {
    const { reply } = await this.call('udpExchange', { host, port, payload: payload.toString('base64'), timeoutMs });
    if (reply.error) return { error: reply.error };
    return { reply: Buffer.from(String(reply.reply), 'base64') };
  }

  async resolve(name: string, server?: string): Promise<{ addresses?: string[]; error?: string }> {
    const { reply } = await this.call('resolve', { name, ...(server ? { server } : {}) });
    return reply.error ? { error: reply.error } : { addresses: reply.addresses as string[] };
  }

  async lookup(name: string): Promise<{ addresses?: unknown[]; error?: string }> {
    const { reply } = await this.call('lookup', { name });
    return reply.error ? { error: reply.error } : { addresses: reply.addresses as unknown[] };
  }

  async flood(host: string, port: number, count: number, payload: string, timeoutMs = 10_000): Promise<FloodResult> {
    const { reply } = await this.call('flood', { host, port, count, payload, timeoutMs }, timeoutMs + 30_000);
    if (reply.error) throw new Error(`flood failed: ${reply.error}`);
    return { results: reply.results as string[], ms: reply.ms as number };
  }

  async slowStart(host: string, port: number, count: number, payload: string): Promise<{ key: number; connected: number; errors: number }> {
    const { reply } = await this.call('slowStart', { host, port, count, payload });
    if (reply.error) throw new Error(`slowStart failed: ${reply.error}`);
    return { key: reply.key as number, connected: reply.connected as number, errors: reply.errors as number };
  }

  async slowTrickle(key: number, payload: string): Promise<{ writable: number; closedByPeer: number }> {
    const { reply } = await this.call('slowTrickle', { key, payload });
    return { writable: reply.writable as number, closedByPeer: reply.closedByPeer as number };
  }

  async slowStop(key: number): Promise<{ open: number; closedByPeer: number; connected: number; errors: number }> {
    const { reply } = await this.call('slowStop', { key });
    return { open: reply.open as number, closedByPeer: reply.closedByPeer as number, connected: reply.connected as number, errors: reply.errors as number };
  }

  /** Runs a program as the broker's user, inside the namespace. */
  async run(cmd: string, args: string[]): Promise<{ status: number | null; output: string; error?: string }> {
    const { reply } = await this.call('run', { cmd, args });
    return { status: (reply.status as number | null) ?? null, output: `${String(reply.stdout ?? '')}${String(reply.stderr ?? '')}`, ...(reply.error ? { error: reply.error } : {}) };
  }

  async info(): Promise<{ uid: number; gid: number; interfaces: Record<string, Array<{ address: string; family: string }>> }> {
    const { reply } = await this.call('info');
    return reply as unknown as { uid: number; gid: number; interfaces: Record<string, Array<{ address: string; family: string }>> };
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  async stop(): Promise<void> {
    if (this.closed) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.disconnect();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(timer);
  }
}
