/**
 * The sealed test world: the agent in a network namespace whose only reachable address is the
 * sidecar's listener; the sidecar, its upstreams, its DNS server and the "forbidden" servers in a
 * second namespace with no route out; the control plane in the test process on loopback, reached
 * by the sidecar over a unix socket. Nothing here can send a packet to a real network.
 *
 * ```
 *  eg-agent-*  (uid nobody)            eg-world-*                                root namespace
 *  lo                                  lo: 198.51.100.2:443  TLS upstream          (test process)
 *  ega* 198.18.0.2/30 ---veth--- egw*      198.51.100.3:80   HTTP upstream          control plane
 *                     198.18.0.1/30        198.51.100.53:53  DNS                    127.0.0.1:xds,admin
 *                                          198.51.100.66     evil (trap)                 ^
 *                                          10.0.0.5, 169.254.169.254, 100.64.0.5,        | TCP relay
 *                                          172.16.0.5, 192.168.0.5, fd00:ec2::254,       |
 *                                          fe80::5, 64:ff9b::a9fe:a9fe,                  |
 *                                          127.0.0.1, ::1 (traps, incl. the cp ports)    |
 *                                      Envoy: listener 198.18.0.1:15001,   xds.sock (unix, 0700 dir)
 *                                             admin on a unix socket ----------------------'
 * ```
 *
 * Why this shape:
 * - No routes but the connected /30s: the agent can address only 198.18.0.1, where only Envoy
 *   listens; the world namespace has no default route, so whatever Envoy dials stays inside it.
 *   Forwarding is off in both namespaces, and IPv6 is off on the veth (no link-local side door).
 * - The agent's broker runs as `nobody`: it cannot add a route, open a raw socket, or open the
 *   root-owned 0700 directory that holds Envoy's admin socket and the xDS relay socket.
 * - Envoy reaches the control plane through a unix socket (filesystem, not network): no link
 *   between the world namespace and the root namespace exists at all. The control plane stays in
 *   the test process with the real src/ wiring, its registry and metrics inspectable directly.
 * - Sockets of the world's servers are created inside the namespace by a broker process and handed
 *   to this process (netns-broker.ts), so upstreams, DNS and traps are plain in-process servers.
 * - Forbidden servers ("traps") accept and count connections; any hit is recorded with the test
 *   that was running and printed at once; suites assert `newTrapHits()` is empty after each test.
 */
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { startControlPlane, type RunningControlPlane } from '../../src/server/control-plane';
import { bootstrapConfig, XDS_CLUSTER } from '../../src/envoy/bootstrap';
import { startEnvoy, type EnvoyProcess } from '../../src/envoy/process';
import { locateEnvoy } from '../../src/envoy/locate';
import { createTestCa, issueServerCert, type TestCa } from '../../src/demo/upstreams';
import { freePort } from '../../src/demo/free-port';
import { encodeStrict } from '../../src/xds/proto';
import { formatNodeId, type NodeId } from '../../src/identity/node-id';
import { selectResources } from '../../src/cache/snapshot';
import { TYPE } from '../../src/xds/type-urls';
import { egressRouteConfigName } from '../../src/translate/names';
import { nftRedirectRules } from '../../src/envoy/redirect-rules';
import { silentLogger, type Logger } from '../../src/util/logger';
import { formatPolicyError, type PolicyError } from '../../src/policy/errors';
import {
  addLoopbackAddresses,
  createNamespace,
  deleteNamespaces,
  execIn,
  installRootNamespaceTripwire,
  ipIn,
  IP_BIN,
  readSysctlIn,
  routesOf,
  sweepStaleNamespaces,
  vethPair,
} from './netns';
import { NetnsBroker } from './netns-broker';
import { TestDnsServer } from '../../src/demo/dns-server';
import type { UpstreamRequest } from '../../src/demo/upstreams';

/** Addresses of the sealed world (private to its namespaces). */
export const SEALED = {
  sidecar: '198.18.0.1',
  agent: '198.18.0.2',
  listenPort: 15001,
  tlsUpstream: '198.51.100.2',
  httpUpstream: '198.51.100.3',
  dns: '198.51.100.53',
  evil: '198.51.100.66',
  /** Transparent mode: an address the agent dials that only a trap listens on (never a real upstream). */
  attackerIp: '203.0.113.9',
  /** Transparent mode: the listener in the pod namespace, on its loopback. */
  transparentListen: '127.0.0.1',
} as const;

/** Guarded destinations with a trap on :80 and :443 (besides loopback, see below). */
export const FORBIDDEN_ADDRESSES: ReadonlyArray<{ name: string; ip: string }> = [
  { name: 'rfc1918-10', ip: '10.0.0.5' },
  { name: 'metadata', ip: '169.254.169.254' },
  { name: 'cgnat', ip: '100.64.0.5' },
  { name: 'rfc1918-172', ip: '172.16.0.5' },
  { name: 'rfc1918-192', ip: '192.168.0.5' },
  { name: 'metadata-v6', ip: 'fd00:ec2::254' },
  { name: 'link-local-v6', ip: 'fe80::5' },
  { name: 'nat64-metadata', ip: '64:ff9b::a9fe:a9fe' },
];

export interface TrapHit {
  trap: string;
  address: string;
  remote: string;
  at: number;
  test?: string;
}

export interface Trap {
  name: string;
  host: string;
  port: number;
  hits: TrapHit[];
}

/** What an upstream records of each request: the same record as the loopback upstreams keep. */
export type { UpstreamRequest };

export interface SealedUpstream {
  name: string;
  host: string;
  port: number;
  /** TCP connections accepted. */
  connections: number;
  requests: UpstreamRequest[];
  /** Requests with an Upgrade header that reached the upstream (method, url, upgrade value). */
  upgrades: UpstreamRequest[];
  /** CONNECT requests forwarded as requests (a proxy that did not terminate CONNECT). */
  connects: UpstreamRequest[];
}

export interface SealedSidecar {
  node: NodeId;
  nodeId: string;
  /** The listener, as the agent reaches it. */
  proxy: { host: string; port: number };
  envoy: EnvoyProcess;
  adminSocketPath: string;
}

export interface SealedWorld {
  workDir: string;
  policiesDir: string;
  worldNs: string;
  /** The agent's namespace; in transparent mode also the sidecar's (the "pod"). */
  agentNs: string;
  /** Transparent mode: the nftables script applied in the pod (exactly `exitgate redirect-rules` output). */
  redirectRules?: string;
  /** Envoy's stat prefix of the egress listener (`listener.<address>_<port>`). */
  listenerStatPrefix: string;
  /** The agent: a broker running as `nobody` inside the agent namespace. */
  agent: NetnsBroker;
  dns: TestDnsServer;
  ca: TestCa;
  tlsUpstream: SealedUpstream;
  httpUpstream: SealedUpstream;
  traps: Trap[];
  cp: RunningControlPlane;
  sidecar: SealedSidecar;
  xdsRelayPath: string;
  /** A TCP connection from the agent to the sidecar listener. */
  agentConnect(): Promise<net.Socket>;
  /** Every trap hit so far. */
  trapHits(): TrapHit[];
  /** Trap hits after the last call (or since start); a non-empty answer is a leak. */
  newTrapHits(): TrapHit[];
  /** Writes policy files (name -> YAML) atomically and waits until the sidecar ACKed the routes. */
  applyPolicies(files: Record<string, string>, timeoutMs?: number): Promise<void>;
  /** Waits until the sidecar ACKed the route configuration the control plane currently serves it. */
  waitRoutesAcked(timeoutMs?: number): Promise<string>;
  /** Cuts the sidecar off its control plane (closes the xDS relay and its connections). */
  cutControlPlane(): Promise<void>;
  restoreControlPlane(): Promise<void>;
  /** Listening TCP sockets owned by the Envoy process, as `address:port`. */
  envoyListeningSockets(): Promise<string[]>;
  describe(): string;
  stop(): Promise<void>;
}

function currentTestName(): string | undefined {
  try {
    // Only inside jest; outside it (a script) there is no current test.
    return (globalThis as { expect?: { getState?: () => { currentTestName?: string } } }).expect?.getState?.().currentTestName;
  } catch {
    return undefined;
  }
}

function record(req: http.IncomingMessage, body = ''): UpstreamRequest {
  return { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, at: Date.now() };
}

/** An HTTP(S) echo server on a listening handle from the namespace (suites add their own with a broker's handle). */
export function serveEcho(handle: net.Server, name: string, host: string, port: number, tlsCert?: { certPem: string; keyPem: string }): SealedUpstream {
  const up: SealedUpstream = { name, host, port, connections: 0, requests: [], upgrades: [], connects: [] };
  const onRequest: http.RequestListener = (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = record(req, Buffer.concat(chunks).toString('utf8'));
      up.requests.push(r);
      const body = JSON.stringify({ upstream: name, method: r.method, url: r.url, host: req.headers.host, headers: req.headers });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  };
  const server = tlsCert ? https.createServer({ cert: tlsCert.certPem, key: tlsCert.keyPem }, onRequest) : http.createServer(onRequest);
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
    up.upgrades.push(record(req));
    up.requests.push(record(req));
    socket.on('error', () => undefined);
    // Accept it, so a proxy that forwarded the upgrade would visibly complete it.
    socket.end(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${String(req.headers.upgrade)}\r\n\r\n`);
  });
  server.on('connect', (req: http.IncomingMessage, socket: net.Socket) => {
    up.connects.push(record(req));
    socket.on('error', () => undefined);
    socket.end('HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n');
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  handle.on('connection', (socket: net.Socket) => {
    up.connections += 1;
    socket.on('error', () => undefined);
    server.emit('connection', socket);
  });
  return up;
}

/**
 * A TCP relay from a unix socket to the control plane's xDS port: how the sidecar in the world
 * namespace reaches a control plane in the root namespace without any network link.
 */
class UnixRelay {
  private server?: net.Server;
  private readonly live = new Set<net.Socket>();

  constructor(
    readonly socketPath: string,
    private readonly target: { host: string; port: number },
  ) {}

  async open(): Promise<void> {
    await fs.rm(this.socketPath, { force: true });
    const server = net.createServer((down) => {
      const up = net.connect(this.target.port, this.target.host);
      this.live.add(down);
      this.live.add(up);
      const drop = (): void => {
        down.destroy();
        up.destroy();
        this.live.delete(down);
        this.live.delete(up);
      };
      down.on('error', drop).on('close', drop);
      up.on('error', drop).on('close', drop);
      down.pipe(up);
      up.pipe(down);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => resolve());
    });
    await fs.chmod(this.socketPath, 0o600);
    this.server = server;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.live) s.destroy();
    this.live.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await fs.rm(this.socketPath, { force: true });
  }
}

async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  await fs.writeFile(tmp, text);
  await fs.rename(tmp, file);
}

/** Parses /proc/<pid>/net/tcp{,6} hex addresses. */
function procAddress(hex: string, v6: boolean): string {
  const [addrHex, portHex] = hex.split(':') as [string, string];
  const port = parseInt(portHex, 16);
  if (!v6) {
    const b = Buffer.from(addrHex, 'hex');
    return `${b[3]}.${b[2]}.${b[1]}.${b[0]}:${port}`;
  }
  // Four little-endian 32-bit words.
  const words: string[] = [];
  for (let i = 0; i < 4; i++) {
    const w = Buffer.from(addrHex.slice(i * 8, i * 8 + 8), 'hex');
    words.push(Buffer.from([w[3]!, w[2]!, w[1]!, w[0]!]).toString('hex'));
  }
  const groups = words.join('').match(/.{4}/g)!.map((g) => g.replace(/^0+(?=.)/, ''));
  return `[${groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::')}]:${port}`;
}

export interface SealedWorldOptions {
  node: NodeId;
  /** Names the TLS upstream's certificate covers. */
  tlsNames: string[];
  /**
   * Initial policy files (name -> YAML); the control plane refuses to start on invalid ones. A
   * function gets the control plane's ports (to write rules naming them) and the work directory.
   */
  policies: Record<string, string> | ((ctx: { xdsPort: number; adminPort: number; workDir: string }) => Record<string, string>);
  log?: Logger;
  /**
   * Transparent mode: the agent and the sidecar share one "pod" namespace (the agent's broker as
   * nobody, Envoy as root), the pod runs the redirect rules exitgate ships, and routes the test
   * networks over the veth into the world namespace, which still has no route out. SO_ORIGINAL_DST
   * needs the redirect and the listener in one namespace (it reads that namespace's conntrack).
   */
  transparent?: boolean;
  /** Every access log entry the control plane receives (debugging, raw-entry assertions). */
  onAccessLogEntry?: Parameters<typeof startControlPlane>[0]['onAccessLogEntry'];
}

export async function startSealedWorld(opts: SealedWorldOptions): Promise<SealedWorld> {
  installRootNamespaceTripwire();
  sweepStaleNamespaces();
  const log = opts.log ?? silentLogger();
  const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'eg-sealed-'));
  await fs.chmod(workDir, 0o700);
  const policiesDir = path.join(workDir, 'policies');
  await fs.mkdir(policiesDir, { recursive: true });
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  const cleanup = async (): Promise<void> => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        // keep cleaning
      }
    }
    cleanups.length = 0;
  };

  try {
    // --- namespaces and links
    const transparent = opts.transparent === true;
    const worldNs = createNamespace('world');
    const agentNs = createNamespace(transparent ? 'pod' : 'agent');
    cleanups.push(() => deleteNamespaces());
    const tag = worldNs.slice(-6);
    vethPair({ ns: worldNs, ifname: `egw${tag}`, cidr: `${SEALED.sidecar}/30` }, { ns: agentNs, ifname: `ega${tag}`, cidr: `${SEALED.agent}/30` });
    addLoopbackAddresses(worldNs, [SEALED.tlsUpstream, SEALED.httpUpstream, SEALED.dns, SEALED.evil, ...FORBIDDEN_ADDRESSES.map((f) => f.ip), ...(transparent ? [SEALED.attackerIp] : [])]);
    if (transparent) {
      // The pod reaches the world's test networks (and its traps) over the veth, as a pod reaches
      // the internet; the world namespace has no link beyond it and does not forward.
      for (const dest of ['198.51.100.0/24', '203.0.113.0/24', ...FORBIDDEN_ADDRESSES.filter((f) => !f.ip.includes(':')).map((f) => `${f.ip}/32`)]) {
        ipIn(agentNs, 'route', 'add', dest, 'via', SEALED.sidecar);
      }
    }
    for (const ns of [worldNs, agentNs]) {
      for (const route of routesOf(ns)) {
        if (/^default\b/.test(route)) throw new Error(`namespace ${ns} has a default route: ${route}`);
      }
      if (readSysctlIn(ns, 'net.ipv4.ip_forward') !== '0') throw new Error(`namespace ${ns} forwards IPv4`);
    }

    // --- brokers
    const worldBroker = await NetnsBroker.start(worldNs);
    cleanups.push(() => worldBroker.stop());
    // Transparent: the redirect rules exitgate ships, applied before the agent can connect.
    let redirectRules: string | undefined;
    if (transparent) {
      redirectRules = nftRedirectRules({ listenPort: SEALED.listenPort, proxyUid: 0 });
      const rulesFile = path.join(workDir, 'redirect.nft');
      await fs.writeFile(rulesFile, redirectRules, { mode: 0o600 });
      execIn(agentNs, 'nft', ['-f', rulesFile]);
    }
    // Root inside the pod (transparent): the sidecar's loopback, where its traps go.
    const podBroker = transparent ? await NetnsBroker.start(agentNs) : undefined;
    if (podBroker) cleanups.push(() => podBroker.stop());
    const agent = await NetnsBroker.start(agentNs, { uid: 65534 });
    cleanups.push(() => agent.stop());
    if (agent.uid !== 65534) throw new Error(`the agent broker runs as uid ${agent.uid}, expected nobody`);

    const closers: Array<() => void> = [];
    cleanups.push(() => closers.forEach((c) => c()));

    // --- DNS
    const dnsSocket = await worldBroker.bindUdp(SEALED.dns, 53);
    const dns = TestDnsServer.onSocket(dnsSocket, { host: SEALED.dns, port: 53 });
    cleanups.push(() => dns.stop());

    // --- upstreams
    const ca = await createTestCa(path.join(workDir, 'ca'));
    const cert = await issueServerCert(ca, path.join(workDir, 'upstream-cert'), opts.tlsNames);
    const tlsHandle = await worldBroker.listenTcp(SEALED.tlsUpstream, 443);
    closers.push(() => tlsHandle.close());
    const tlsUpstream = serveEcho(tlsHandle, 'tls-upstream', SEALED.tlsUpstream, 443, cert);
    const httpHandle = await worldBroker.listenTcp(SEALED.httpUpstream, 80);
    closers.push(() => httpHandle.close());
    const httpUpstream = serveEcho(httpHandle, 'http-upstream', SEALED.httpUpstream, 80);

    // --- the control plane (root namespace, loopback) and the relay the sidecar reaches it by
    const xdsPort = await freePort();
    const adminPort = await freePort();
    const initial = typeof opts.policies === 'function' ? opts.policies({ xdsPort, adminPort, workDir }) : opts.policies;
    for (const [name, text] of Object.entries(initial)) await writeAtomic(path.join(policiesDir, name), text);
    const cp = await startControlPlane({
      policiesDir,
      xdsListen: { host: '127.0.0.1', port: xdsPort },
      adminListen: { host: '127.0.0.1', port: adminPort },
      guardAllow: [],
      dnsResolver: { address: SEALED.dns, port: 53 },
      log,
      ...(opts.onAccessLogEntry ? { onAccessLogEntry: opts.onAccessLogEntry } : {}),
      // TLS the sidecar originates (`tls: originate`) trusts the world's test CA (serve --upstream-ca).
      ...({ upstreamCaPem: ca.caPem } as Record<string, unknown>),
    });
    cleanups.push(() => cp.stop());
    const relay = new UnixRelay(path.join(workDir, 'xds.sock'), { host: '127.0.0.1', port: cp.xdsPort });
    await relay.open();
    cleanups.push(() => relay.close());

    // --- traps: guarded addresses, the evil host, wrong ports of the allowed upstreams, and the
    // loopback ports where a colocated control plane or Envoy admin would listen.
    const trapHits: TrapHit[] = [];
    const traps: Trap[] = [];
    let reported = 0;
    const addTrap = async (name: string, host: string, port: number, broker: NetnsBroker = worldBroker): Promise<void> => {
      const handle = await broker.listenTcp(host, port, host.includes(':') ? { ipv6Only: true } : {});
      closers.push(() => handle.close());
      const trap: Trap = { name, host, port, hits: [] };
      handle.on('connection', (socket: net.Socket) => {
        const hit: TrapHit = {
          trap: name,
          address: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`,
          remote: `${socket.remoteAddress}:${socket.remotePort}`,
          at: Date.now(),
          ...(currentTestName() ? { test: currentTestName()! } : {}),
        };
        trap.hits.push(hit);
        trapHits.push(hit);
        console.error(`FORBIDDEN SERVER HIT: ${name} ${hit.address} from ${hit.remote} during "${hit.test ?? '?'}"`);
        socket.on('error', () => undefined);
        socket.destroy();
      });
      traps.push(trap);
    };
    // A link-local address needs its interface to bind (and to be dialled at all).
    for (const f of FORBIDDEN_ADDRESSES) for (const port of [80, 443]) await addTrap(`${f.name}:${port}`, f.ip.startsWith('fe80:') ? `${f.ip}%lo` : f.ip, port);
    for (const port of [80, 443, 8443]) await addTrap(`evil:${port}`, SEALED.evil, port);
    await addTrap('tls-upstream-wrong-port:8443', SEALED.tlsUpstream, 8443);
    await addTrap('http-upstream-wrong-port:8080', SEALED.httpUpstream, 8080);
    // `GET https://api.../` must never become cleartext HTTP to port 80 of the TLS upstream.
    await addTrap('tls-upstream-cleartext:80', SEALED.tlsUpstream, 80);
    if (transparent) for (const port of [80, 443, 8443]) await addTrap(`attacker-ip:${port}`, SEALED.attackerIp, port);
    // Loopback traps sit where the sidecar runs: its loopback is what a confused sidecar would dial.
    const loopbackBroker = podBroker ?? worldBroker;
    for (const [label, port] of [['http', 80], ['https', 443], ['xds', cp.xdsPort], ['admin-api', cp.adminPort], ['envoy-admin-9901', 9901], ['envoy-admin-15000', 15000]] as const) {
      await addTrap(`loopback-${label}:${port}`, '127.0.0.1', port, loopbackBroker);
      await addTrap(`loopback6-${label}:${port}`, '::1', port, loopbackBroker);
    }

    // --- the sidecar: real Envoy inside the world namespace
    const envoyBin = await locateEnvoy();
    const envoyDir = path.join(workDir, 'envoy');
    await fs.mkdir(envoyDir, { recursive: true, mode: 0o700 });
    const wrapper = path.join(workDir, 'envoy-in-netns.sh');
    await fs.writeFile(wrapper, `#!/bin/sh\nexec ${IP_BIN} netns exec ${transparent ? agentNs : worldNs} ${JSON.stringify(envoyBin)} "$@"\n`, { mode: 0o700 });
    const listenHost = transparent ? SEALED.transparentListen : SEALED.sidecar;
    const adminSocketPath = path.join(envoyDir, 'admin.sock');
    const config = bootstrapConfig({
      node: opts.node,
      xds: { host: '127.0.0.1', port: cp.xdsPort },
      listen: { address: listenHost, port: SEALED.listenPort },
      adminSocketPath,
      ...(transparent ? { mode: 'transparent' as const } : {}),
    });
    // The xDS cluster dials the relay's unix socket instead of a TCP address.
    const clusters = (config.static_resources as { clusters: Array<Record<string, unknown>> }).clusters;
    const xdsCluster = clusters.find((c) => c.name === XDS_CLUSTER);
    if (!xdsCluster) throw new Error(`bootstrap has no ${XDS_CLUSTER} cluster`);
    xdsCluster.type = 'STATIC';
    xdsCluster.load_assignment = {
      cluster_name: XDS_CLUSTER,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path: relay.socketPath } } } }] }],
    };
    const checked = encodeStrict('type.googleapis.com/envoy.config.bootstrap.v3.Bootstrap', config);
    if (!checked.ok) throw new Error(`sealed bootstrap does not encode: ${checked.errors.join('; ')}`);
    const envoy = await startEnvoy({ bin: wrapper, configYaml: stringify(config), workDir: envoyDir, adminSocketPath });
    cleanups.push(() => envoy.stop());
    await envoy.waitReady(30_000);
    const sidecar: SealedSidecar = {
      node: opts.node,
      nodeId: formatNodeId(opts.node),
      proxy: { host: listenHost, port: SEALED.listenPort },
      envoy,
      adminSocketPath,
    };

    const routeConfigName = egressRouteConfigName(opts.node.tenant, opts.node.agent);
    const world: SealedWorld = {
      workDir,
      policiesDir,
      worldNs,
      agentNs,
      ...(redirectRules ? { redirectRules } : {}),
      listenerStatPrefix: `listener.${listenHost}_${SEALED.listenPort}`,
      agent,
      dns,
      ca,
      tlsUpstream,
      httpUpstream,
      traps,
      cp,
      sidecar,
      xdsRelayPath: relay.socketPath,
      async agentConnect() {
        const r = await agent.connectTcp(listenHost, SEALED.listenPort);
        if (!r.socket) throw new Error(`the agent cannot reach the sidecar listener: ${r.error}`);
        return r.socket;
      },
      trapHits: () => [...trapHits],
      newTrapHits() {
        const fresh = trapHits.slice(reported);
        reported = trapHits.length;
        return fresh;
      },
      async waitRoutesAcked(timeoutMs = 10_000) {
        const deadline = Date.now() + timeoutMs;
        let last = '';
        for (;;) {
          const entry = cp.registry.entries().find((e) => e.status.node === sidecar.nodeId);
          if (entry?.snapshot) {
            // Routes, and the listener too: transparent mode's TLS rules live in its filter chains.
            const expected = selectResources(entry.snapshot, TYPE.route, new Set([routeConfigName])).version;
            const acked = entry.status.resources[TYPE.route]?.ackedVersion;
            const expectedLds = selectResources(entry.snapshot, TYPE.listener, 'wildcard').version;
            const ackedLds = entry.status.resources[TYPE.listener]?.ackedVersion;
            if (acked === expected && ackedLds === expectedLds) return expected;
            last = `routes acked ${acked ?? 'nothing'}, serving ${expected}; listeners acked ${ackedLds ?? 'nothing'}, serving ${expectedLds}`;
          } else last = 'node not connected';
          if (Date.now() > deadline) throw new Error(`sidecar did not ACK the current routes within ${timeoutMs} ms (${last})`);
          await new Promise((r) => setTimeout(r, 10));
        }
      },
      async applyPolicies(files, timeoutMs = 10_000) {
        const applied = new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => {
            cp.store.off('policies', onOk);
            cp.store.off('invalid', onBad);
            reject(new Error(`the control plane did not apply the policy change within ${timeoutMs} ms`));
          }, timeoutMs);
          const onOk = (): void => {
            clearTimeout(timer);
            cp.store.off('invalid', onBad);
            resolve();
          };
          const onBad = (errors: PolicyError[]): void => {
            clearTimeout(timer);
            cp.store.off('policies', onOk);
            reject(new Error(`policy change refused:\n${errors.map(formatPolicyError).join('\n')}`));
          };
          cp.store.once('policies', onOk);
          cp.store.once('invalid', onBad);
        });
        for (const [name, text] of Object.entries(files)) await writeAtomic(path.join(policiesDir, name), text);
        await applied;
        await world.waitRoutesAcked(timeoutMs);
      },
      async cutControlPlane() {
        await relay.close();
      },
      async restoreControlPlane() {
        await relay.open();
      },
      async envoyListeningSockets() {
        const pid = envoy.pid;
        const inodes = new Set<string>();
        for (const fd of await fs.readdir(`/proc/${pid}/fd`)) {
          try {
            const link = await fs.readlink(`/proc/${pid}/fd/${fd}`);
            const m = /^socket:\[(\d+)\]$/.exec(link);
            if (m) inodes.add(m[1]!);
          } catch {
            // fd closed meanwhile
          }
        }
        const out: string[] = [];
        for (const [file, v6] of [['tcp', false], ['tcp6', true]] as const) {
          const text = await fs.readFile(`/proc/${pid}/net/${file}`, 'utf8');
          for (const line of text.split('\n').slice(1)) {
            const cols = line.trim().split(/\s+/);
            if (cols.length < 10) continue;
            // st 0A = LISTEN; column 9 is the inode
            if (cols[3] === '0A' && inodes.has(cols[9]!)) out.push(procAddress(cols[1]!, v6));
          }
        }
        return out.sort();
      },
      describe() {
        return [
          `world ns ${worldNs}: ${routesOf(worldNs).filter((r) => !r.startsWith('local ') && !r.startsWith('broadcast ')).join('; ')}`,
          `agent ns ${agentNs}: ${routesOf(agentNs).filter((r) => !r.startsWith('local ') && !r.startsWith('broadcast ')).join('; ')}`,
          `sidecar ${sidecar.nodeId} (${transparent ? 'transparent, in the pod namespace' : 'explicit proxy'}) listening on ${listenHost}:${SEALED.listenPort} (pid ${envoy.pid}), xDS via ${relay.socketPath} -> 127.0.0.1:${cp.xdsPort}`,
          `${traps.length} traps`,
        ].join('\n');
      },
      async stop() {
        await cleanup();
        await fs.rm(workDir, { recursive: true, force: true });
      },
    };
    return world;
  } catch (err) {
    await cleanup();
    await fs.rm(workDir, { recursive: true, force: true });
    throw err;
  }
}
