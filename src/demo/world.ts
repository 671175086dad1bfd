/**
 * A sealed local world for the demo and the end-to-end tests: a DNS server for `.test` names,
 * TLS and plain-HTTP upstreams on loopback addresses, the control plane, and a real Envoy sidecar
 * bootstrapped by `exitgate bootstrap`. Everything listens on 127.0.0.0/8 only; the guard exempts
 * exactly the upstreams' /32 addresses, so nothing here can send a packet off the machine.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { startControlPlane, type ControlPlaneOptions, type RunningControlPlane } from '../server/control-plane';
import { TestDnsServer } from './dns-server';
import { createTestCa, issueServerCert, startHttpUpstream, startTlsUpstream, type TestCa, type Upstream } from './upstreams';
import { startEnvoy, type EnvoyProcess } from '../envoy/process';
import { locateEnvoy } from '../envoy/locate';
import { bootstrapYaml } from '../envoy/bootstrap';
import { freePort } from './free-port';
import { initCa, issueNodeCert, issueServerCert as issueXdsServerCert } from '../identity/certs';
import { parseCidr, type Cidr } from '../util/cidr';
import { silentLogger, type Logger } from '../util/logger';
import type { NodeId } from '../identity/node-id';
import type { XdsProtocol } from '../translate/options';
import type { translate } from '../translate/translate';

export interface World {
  workDir: string;
  policiesDir: string;
  dns: TestDnsServer;
  ca: TestCa;
  tlsUpstream: Upstream;
  httpUpstream: Upstream;
  cp: RunningControlPlane;
  sidecars: Sidecar[];
  addSidecar(node: NodeId, opts?: { xdsProtocol?: XdsProtocol }): Promise<Sidecar>;
  /** Stops and restarts the control plane on the same ports (sidecars keep running). */
  restartControlPlane(): Promise<void>;
  stopControlPlane(): Promise<void>;
  stop(): Promise<void>;
}

export interface Sidecar {
  node: NodeId;
  proxy: { host: string; port: number };
  envoy: EnvoyProcess;
}

export const TLS_UPSTREAM_IP = '127.0.0.2';
export const HTTP_UPSTREAM_IP = '127.0.0.3';

export async function startWorld(opts: {
  workDir: string;
  log?: Logger;
  tlsNames: string[];
  translate?: typeof translate;
  mtls?: boolean;
  /** Test hook: every access log entry the control plane receives (kept across restarts). */
  onAccessLogEntry?: ControlPlaneOptions['onAccessLogEntry'];
}): Promise<World> {
  const log = opts.log ?? silentLogger();
  const workDir = opts.workDir;
  const policiesDir = path.join(workDir, 'policies');
  await fs.mkdir(policiesDir, { recursive: true });
  const envoyBin = await locateEnvoy();
  const dns = await TestDnsServer.start({ host: '127.0.0.1' });
  const ca = await createTestCa(path.join(workDir, 'ca'));
  const cert = await issueServerCert(ca, path.join(workDir, 'upstream-cert'), opts.tlsNames);
  const tlsUpstream = await startTlsUpstream({ host: TLS_UPSTREAM_IP, name: 'tls-upstream', cert });
  const httpUpstream = await startHttpUpstream({ host: HTTP_UPSTREAM_IP, name: 'http-upstream' });
  // Exempt exactly the upstreams' addresses; the rest of loopback (the control plane, Envoy's
  // own listener, the DNS server) stays guarded.
  const guardAllow: Cidr[] = [TLS_UPSTREAM_IP, HTTP_UPSTREAM_IP].map((ip) => {
    const c = parseCidr(`${ip}/32`);
    if (!c.ok) throw new Error(c.reason);
    return c.value;
  });
  // xDS over mTLS: a CA, the control plane's certificate for 127.0.0.1, one certificate per sidecar.
  const xdsCaDir = path.join(workDir, 'xds-ca');
  if (opts.mtls) {
    await initCa(xdsCaDir, { trustDomain: 'exitgate.test', validDays: 1 });
    await issueXdsServerCert(xdsCaDir, ['127.0.0.1'], path.join(workDir, 'xds-server-tls'), { validHours: 1 });
  }
  const xdsPort = await freePort();
  const adminPort = await freePort();
  const cpOptions = {
    policiesDir,
    xdsListen: { host: '127.0.0.1', port: xdsPort },
    adminListen: { host: '127.0.0.1', port: adminPort },
    guardAllow,
    dnsResolver: { address: dns.address.host, port: dns.address.port },
    // Sidecars that originate TLS verify the upstreams against the world's CA (--upstream-ca).
    upstreamCaPem: ca.caPem,
    log,
    ...(opts.translate ? { translate: opts.translate } : {}),
    ...(opts.mtls ? { xdsTlsDir: path.join(workDir, 'xds-server-tls') } : {}),
    ...(opts.onAccessLogEntry ? { onAccessLogEntry: opts.onAccessLogEntry } : {}),
  };
  let cp = await startControlPlane(cpOptions);
  const sidecars: Sidecar[] = [];

  const world: World = {
    workDir,
    policiesDir,
    dns,
    ca,
    tlsUpstream,
    httpUpstream,
    get cp() {
      return cp;
    },
    sidecars,
    async addSidecar(node, sidecarOpts = {}) {
      const listenPort = await freePort();
      const dir = path.join(workDir, `envoy-${sidecars.length}`);
      await fs.mkdir(dir, { recursive: true });
      const adminSocketPath = path.join(dir, 'admin.sock');
      const tlsDir = path.join(dir, 'xds-tls');
      if (opts.mtls) await issueNodeCert(xdsCaDir, node, tlsDir, { validHours: 1 });
      const yaml = bootstrapYaml({ node, xds: { host: '127.0.0.1', port: xdsPort }, listen: { address: '127.0.0.1', port: listenPort }, adminSocketPath, ...(opts.mtls ? { tlsDir } : {}), ...sidecarOpts });
      if (!yaml.ok) throw new Error(yaml.errors.join('; '));
      const envoy = await startEnvoy({ bin: envoyBin, configYaml: yaml.value, workDir: dir, adminSocketPath });
      try {
        await envoy.waitReady(20_000);
      } catch (err) {
        await envoy.stop(); // never leave a half-started sidecar behind
        throw err;
      }
      const sidecar = { node, proxy: { host: '127.0.0.1', port: listenPort }, envoy };
      sidecars.push(sidecar);
      return sidecar;
    },
    async stopControlPlane() {
      await cp.stop();
    },
    async restartControlPlane() {
      await cp.stop();
      cp = await startControlPlane(cpOptions);
    },
    async stop() {
      await Promise.allSettled(sidecars.map((s) => s.envoy.stop()));
      await Promise.allSettled([cp.stop(), dns.stop(), tlsUpstream.stop(), httpUpstream.stop()]);
    },
  };
  return world;
}
