import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { locateEnvoy } from '../../src/envoy/locate';
import { EnvoyProcess, startEnvoy, validateEnvoyConfig } from '../../src/envoy/process';
import { connectThroughProxy, httpsViaConnect, httpViaProxy } from '../support/proxy-client';
import { createTestCa, issueServerCert, startHttpUpstream, startTcpTrap, startTlsUpstream, Upstream } from '../support/upstreams';

// Static listeners cannot use port 0, so borrow a free port from the kernel.
async function freePort(host: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function minimalConfig(adminSocket: string, port: number): string {
  return `
admin:
  address: { pipe: { path: ${adminSocket} } }
static_resources:
  listeners:
  - name: hello
    address: { socket_address: { address: 127.0.0.1, port_value: ${port} } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: hello
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                direct_response: { status: 200, body: { inline_string: "hello from envoy" } }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
`;
}

function get(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

describe('Envoy process (real Envoy)', () => {
  let bin: string;
  let workDir: string;
  let envoy: EnvoyProcess | undefined;

  beforeAll(async () => {
    bin = await locateEnvoy();
  }, 300_000);

  beforeEach(() => {
    // Short base dir: unix socket paths are limited to 107 bytes.
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'eg-envoy-'));
  });

  afterEach(async () => {
    await envoy?.stop();
    envoy = undefined;
    fs.rmSync(workDir, { recursive: true, force: true });
  });

  it('starts, becomes ready, serves traffic and stops', async () => {
    const adminSocketPath = path.join(workDir, 'admin.sock');
    const port = await freePort('127.0.0.1');
    const logs: string[] = [];
    envoy = await startEnvoy({
      bin,
      configYaml: minimalConfig(adminSocketPath, port),
      workDir,
      adminSocketPath,
      onLog: (line) => logs.push(line),
    });
    expect(envoy.pid).toBeGreaterThan(0);
    expect(fs.existsSync(path.join(workDir, 'envoy.yaml'))).toBe(true);

    await envoy.waitReady(10_000);
    const ready = await envoy.admin('/ready');
    expect(ready).toEqual({ status: 200, body: 'LIVE\n' });

    expect(await get(port, '/anything')).toEqual({ status: 200, body: 'hello from envoy' });
    const viaProxy = await httpViaProxy({ host: '127.0.0.1', port }, 'http://api.example.test/x');
    expect(viaProxy.status).toBe(200);
    expect(viaProxy.body).toBe('hello from envoy');

    const stats = await envoy.stats('^http\\.hello\\.downstream_rq_2xx$');
    expect(stats.get('http.hello.downstream_rq_2xx')).toBe(2);
    expect([...stats.keys()]).toEqual(['http.hello.downstream_rq_2xx']);

    const exited = envoy.exited;
    await envoy.stop();
    await expect(exited).resolves.toBe(0);
    await expect(get(port, '/')).rejects.toThrow(/ECONNREFUSED/);
  });

  it('rejects startup with the recent logs when Envoy dies early', async () => {
    const adminSocketPath = path.join(workDir, 'admin.sock');
    const port = await freePort('127.0.0.1');
    const broken = minimalConfig(adminSocketPath, port).replace('stat_prefix', 'stat_prefixx');
    await expect(startEnvoy({ bin, configYaml: broken, workDir, adminSocketPath })).rejects.toThrow(
      /Envoy failed to start: Envoy exited \(code 1\)[\s\S]*stat_prefixx/,
    );
  });

  it('reports a binary that cannot be spawned', async () => {
    const adminSocketPath = path.join(workDir, 'admin.sock');
    await expect(startEnvoy({ bin: '/nonexistent/envoy', configYaml: '{}', workDir, adminSocketPath })).rejects.toThrow(
      /cannot start Envoy \/nonexistent\/envoy: .*ENOENT/,
    );
  });

  it('validates a good config and rejects a typo', async () => {
    const adminSocketPath = path.join(workDir, 'admin.sock');
    const good = minimalConfig(adminSocketPath, 10000);
    const ok = await validateEnvoyConfig(bin, good, workDir);
    expect(ok.ok).toBe(true);

    const bad = await validateEnvoyConfig(bin, good.replace('stat_prefix', 'stat_prefixx'), workDir);
    expect(bad.ok).toBe(false);
    expect(bad.output).toMatch(/stat_prefixx/);
    // Validation files are temporary.
    expect(fs.readdirSync(workDir).filter((f) => f.startsWith('envoy-validate-'))).toEqual([]);
  });
});

// A hand-written proxy config exercising the demo helpers against real Envoy:
// CONNECT tunnels to a TLS upstream, absolute-URI HTTP to a plain upstream,
// and a CONNECT refusal for one authority.
function proxyConfig(adminSocket: string, port: number, tlsPort: number, httpPort: number): string {
  const cluster = (name: string, p: number): string => `
  - name: ${name}
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: ${name}
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.2, port_value: ${p} } } }`;
  return `
admin:
  address: { pipe: { path: ${adminSocket} } }
static_resources:
  listeners:
  - name: proxy
    address: { socket_address: { address: 127.0.0.1, port_value: ${port} } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: proxy
          upgrade_configs: [{ upgrade_type: CONNECT }]
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { connect_matcher: {}, headers: [{ name: ":authority", string_match: { exact: "forbidden.test:443" } }] }
                direct_response: { status: 403 }
              - match: { connect_matcher: {} }
                route: { cluster: tls_up, upgrade_configs: [{ upgrade_type: CONNECT, connect_config: {} }] }
              - match: { prefix: "/" }
                route: { cluster: http_up }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:${cluster('tls_up', tlsPort)}${cluster('http_up', httpPort)}
`;
}

describe('demo helpers through a real Envoy proxy', () => {
  let bin: string;
  let workDir: string;
  let envoy: EnvoyProcess | undefined;
  const upstreams: Array<{ stop(): Promise<void> }> = [];

  beforeAll(async () => {
    bin = await locateEnvoy();
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'eg-proxy-'));
  }, 300_000);

  afterAll(async () => {
    await envoy?.stop();
    await Promise.all(upstreams.map((u) => u.stop()));
    fs.rmSync(workDir, { recursive: true, force: true });
  });

  it('tunnels HTTPS via CONNECT, forwards absolute-URI HTTP, and relays refusals', async () => {
    const ca = await createTestCa(path.join(workDir, 'pki'));
    const cert = await issueServerCert(ca, path.join(workDir, 'pki'), ['api.example.test', '127.0.0.2']);
    const tlsUp: Upstream = await startTlsUpstream({ host: '127.0.0.2', name: 'tls-up', cert });
    const httpUp: Upstream = await startHttpUpstream({ host: '127.0.0.2', name: 'http-up' });
    const trap = await startTcpTrap({ host: '127.0.0.3', name: 'trap' });
    upstreams.push(tlsUp, httpUp, trap);

    const adminSocketPath = path.join(workDir, 'admin.sock');
    const port = await freePort('127.0.0.1');
    envoy = await startEnvoy({ bin, configYaml: proxyConfig(adminSocketPath, port, tlsUp.port, httpUp.port), workDir, adminSocketPath });
    await envoy.waitReady(10_000);
    const proxy = { host: '127.0.0.1', port };

    const https = await httpsViaConnect(proxy, { host: 'api.example.test', port: tlsUp.port, path: '/v1/models', caPem: ca.caPem });
    expect(https.connectStatus).toBe(200);
    expect(https.status).toBe(200);
    expect(JSON.parse(https.body)).toMatchObject({ upstream: 'tls-up', method: 'GET', url: '/v1/models', host: `api.example.test:${tlsUp.port}` });

    // The tunnel is end-to-end TLS: a wrong servername must fail verification.
    await expect(
      httpsViaConnect(proxy, { host: 'api.example.test', port: tlsUp.port, path: '/', caPem: ca.caPem, servername: 'evil.test' }),
    ).rejects.toThrow(/altnames|ERR_TLS_CERT_ALTNAME_INVALID/);

    const refused = await httpsViaConnect(proxy, { host: 'forbidden.test', port: 443, path: '/', caPem: ca.caPem });
    expect(refused).toEqual({ status: 403, body: '', connectStatus: 403 });
    const rawRefusal = await connectThroughProxy(proxy, 'forbidden.test:443');
    expect(rawRefusal.status).toBe(403);
    expect(rawRefusal.socket).toBeUndefined();
    expect(rawRefusal.headerText).toMatch(/^HTTP\/1\.1 403/);

    const plain = await httpViaProxy(proxy, `http://plain.example.test:8080/p?q=1`, { headers: { 'x-probe': 'yes' } });
    expect(plain.status).toBe(200);
    expect(JSON.parse(plain.body)).toMatchObject({ upstream: 'http-up', url: '/p?q=1', host: 'plain.example.test:8080' });
    expect(httpUp.requests).toHaveLength(1);
    expect(httpUp.requests[0].headers['x-probe']).toBe('yes');

    // The client sends the Host it is told to (seen by talking to the upstream directly)...
    const direct = await httpViaProxy({ host: httpUp.host, port: httpUp.port }, 'http://plain.example.test/h', {
      hostHeader: 'other.example.test',
      method: 'POST',
      body: 'hi',
    });
    expect(JSON.parse(direct.body)).toMatchObject({ method: 'POST', url: 'http://plain.example.test/h', host: 'other.example.test' });
    expect(httpUp.requests[1].body).toBe('hi');
    // ...but Envoy takes the authority from an absolute-form URI over Host (RFC 9112 3.2.2).
    const overridden = await httpViaProxy(proxy, 'http://plain.example.test/h', { hostHeader: 'other.example.test' });
    expect(JSON.parse(overridden.body)).toMatchObject({ url: '/h', host: 'plain.example.test' });

    expect(trap.connections).toBe(0);
  });

  it('counts connections on a TCP trap', async () => {
    const trap = await startTcpTrap({ host: '127.0.0.3', name: 'trap2' });
    upstreams.push(trap);
    await new Promise<void>((resolve) => {
      const s = net.connect({ host: trap.host, port: trap.port });
      s.on('close', () => resolve());
      s.on('error', () => undefined);
    });
    expect(trap.connections).toBe(1);
  });
});
