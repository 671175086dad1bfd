/**
 * SPEC §6.2: revoking a destination cuts existing connections to it within 1 s. Routes apply to
 * new requests at once; an open CONNECT tunnel is never routed again, so the control plane drains
 * the listener's connections on a revocation. Measured with the real Envoy, asserted with a
 * generous bound, the figure printed.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { startWorld, TLS_UPSTREAM_IP, type World, type Sidecar } from '../../src/demo/world';
import { connectThroughProxy } from '../../src/demo/proxy-client';
import { reportSummary } from '../support/run-summary';

const policy = (port: number, hosts: string[]) => `apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: coding, tenant: acme }
spec:
  agents: ["coder"]
  allow:
${hosts.map((h) => `    - name: ${h.split('.')[0]}\n      hosts: ["${h}"]\n      ports: [${port}]\n`).join('')}`;

describe('revocation that bites', () => {
  let world: World;
  let sidecar: Sidecar;
  let port: number;
  const write = async (hosts: string[]) => {
    const file = path.join(world.policiesDir, 'acme.yaml');
    await fs.writeFile(`${file}.tmp`, policy(port, hosts));
    await fs.rename(`${file}.tmp`, file);
  };

  /** A TLS conversation through a CONNECT tunnel, left open. */
  async function openTunnel(host: string): Promise<tls.TLSSocket> {
    const c = await connectThroughProxy(sidecar.proxy, `${host}:${port}`);
    if (c.status !== 200 || !c.socket) throw new Error(`CONNECT ${host} refused: ${c.status}`);
    const socket = tls.connect({ socket: c.socket, ca: world.ca.caPem, servername: host });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    socket.on('error', () => undefined);
    return socket;
  }

  beforeAll(async () => {
    const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-revoke-'));
    world = await startWorld({ workDir, tlsNames: ['api.allowed.test', 'other.allowed.test'] });
    port = world.tlsUpstream.port;
    world.dns.setRecord('api.allowed.test', [TLS_UPSTREAM_IP]);
    world.dns.setRecord('other.allowed.test', [TLS_UPSTREAM_IP]);
    await write(['api.allowed.test', 'other.allowed.test']);
    sidecar = await world.addSidecar({ tenant: 'acme', agent: 'coder', instance: 'revoke-1' });
  }, 90_000);

  afterAll(async () => {
    await world?.stop();
  });

  it('closes a tunnel opened before the revocation within about a second, without restarting Envoy', async () => {
    const pid = sidecar.envoy.pid;
    const tunnel = await openTunnel('api.allowed.test');
    const closed = new Promise<number>((resolve) => tunnel.once('close', () => resolve(performance.now())));
    // The tunnel really carries traffic before the revocation.
    tunnel.write('GET /before HTTP/1.1\r\nHost: api.allowed.test\r\n\r\n');
    await new Promise<void>((resolve) => tunnel.once('data', () => resolve()));

    const revokedAt = performance.now();
    await write(['other.allowed.test']);
    const closedAt = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(Number.NaN), 10_000))]);
    const ms = closedAt - revokedAt;
    reportSummary(`revocation: tunnel to the revoked destination closed ${ms.toFixed(0)} ms after the policy file was replaced (Envoy pid ${pid} unchanged)`);
    expect(Number.isNaN(ms)).toBe(false);
    expect(ms).toBeLessThan(1000); // SPEC §6.2; typically ~40 ms here
    expect(sidecar.envoy.pid).toBe(pid);
    expect(sidecar.envoy.exitStatus).toBeUndefined();

    const again = await connectThroughProxy(sidecar.proxy, `api.allowed.test:${port}`);
    again.socket?.destroy();
    expect(again.status).toBe(403);
    const other = await openTunnel('other.allowed.test'); // what is still allowed still works
    other.destroy();
  });

  it('a change that only adds access drains nothing', async () => {
    const tunnel = await openTunnel('other.allowed.test');
    let closed = false;
    tunnel.once('close', () => (closed = true));
    await write(['other.allowed.test', 'api.allowed.test']);
    await new Promise((r) => setTimeout(r, 2500));
    expect(closed).toBe(false);
    tunnel.write('GET /still-open HTTP/1.1\r\nHost: other.allowed.test\r\n\r\n');
    await new Promise<void>((resolve) => tunnel.once('data', () => resolve()));
    tunnel.destroy();
  });
});
