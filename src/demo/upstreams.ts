import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';

/**
 * Local stand-ins for the internet, for tests and the demo: a throwaway CA,
 * HTTP/HTTPS servers that echo what reached them, and TCP "traps" for
 * destinations policy must never let through. Everything binds to loopback.
 */

export interface TestCa {
  caCertPath: string;
  caKeyPath: string;
  caPem: string;
}

export interface ServerCert {
  certPath: string;
  keyPath: string;
  certPem: string;
  keyPem: string;
}

export interface UpstreamRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  at: number;
}

export interface Upstream {
  name: string;
  host: string;
  port: number;
  requests: UpstreamRequest[];
  stop(): Promise<void>;
}

export interface TcpTrap {
  name: string;
  host: string;
  port: number;
  /** Number of TCP connections accepted so far; any > 0 means a leak. */
  readonly connections: number;
  stop(): Promise<void>;
}

function assertLoopback(host: string): void {
  if (host === '::1' || (net.isIPv4(host) && host.startsWith('127.'))) return;
  throw new Error(`test upstreams bind to loopback only, got ${host}`);
}

function openssl(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: 30_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`openssl ${args[0]} failed: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });
}

// Our own minimal config so the result does not depend on the system openssl.cnf.
const CA_CONFIG = `[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = exitgate test CA
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
`;

const EC_KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** A fresh self-signed CA (EC P-256, valid 1 day) in dir. */
export async function createTestCa(dir: string): Promise<TestCa> {
  await fs.promises.mkdir(dir, { recursive: true });
  const cnf = path.join(dir, 'ca.cnf');
  const caCertPath = path.join(dir, 'ca.crt');
  const caKeyPath = path.join(dir, 'ca.key');
  await fs.promises.writeFile(cnf, CA_CONFIG);
  await openssl(['req', '-x509', ...EC_KEY_ARGS, '-keyout', caKeyPath, '-out', caCertPath, '-days', '1', '-config', cnf], dir);
  return { caCertPath, caKeyPath, caPem: await fs.promises.readFile(caCertPath, 'utf8') };
}

/** A server cert signed by ca whose SANs are names (IP literals become IP SANs). */
export async function issueServerCert(ca: TestCa, dir: string, names: string[]): Promise<ServerCert> {
  if (names.length === 0) throw new Error('issueServerCert needs at least one name');
  await fs.promises.mkdir(dir, { recursive: true });
  const base = names[0].replace(/[^A-Za-z0-9.-]/g, '_');
  const cnf = path.join(dir, `${base}.cnf`);
  const csrPath = path.join(dir, `${base}.csr`);
  const certPath = path.join(dir, `${base}.crt`);
  const keyPath = path.join(dir, `${base}.key`);
  const sans = names.map((n) => (net.isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  await fs.promises.writeFile(
    cnf,
    `[req]
distinguished_name = dn
prompt = no
[dn]
CN = ${names[0]}
[v3_srv]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = ${sans}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`,
  );
  await openssl(['req', '-new', ...EC_KEY_ARGS, '-keyout', keyPath, '-out', csrPath, '-config', cnf], dir);
  await openssl(
    ['x509', '-req', '-in', csrPath, '-CA', ca.caCertPath, '-CAkey', ca.caKeyPath,
      // Random serials: certs for the same name must not collide across runs.
      '-set_serial', `0x${randomBytes(16).toString('hex')}`,
      '-days', '1', '-extfile', cnf, '-extensions', 'v3_srv', '-out', certPath],
    dir,
  );
  return {
    certPath,
    keyPath,
    certPem: await fs.promises.readFile(certPath, 'utf8'),
    keyPem: await fs.promises.readFile(keyPath, 'utf8'),
  };
}

const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'x-api-key', 'cookie']);

function echoHandler(name: string, requests: UpstreamRequest[]): http.RequestListener {
  return (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const method = req.method ?? '';
      const url = req.url ?? '';
      requests.push({ method, url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() });
      // Like a real API, the stand-in never reflects credentials: the echo shows that an
      // Authorization header arrived, not its value (the test reads the value server-side).
      const shown = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, CREDENTIAL_HEADERS.has(k) ? '[present]' : v]));
      const body = JSON.stringify({ upstream: name, method, url, host: req.headers.host, headers: shown });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  };
}

async function listen(server: net.Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as net.AddressInfo).port;
}

async function serveEcho(server: http.Server, opts: { host: string; port?: number; name: string }, requests: UpstreamRequest[]): Promise<Upstream> {
  const port = await listen(server, opts.host, opts.port ?? 0);
  return {
    name: opts.name,
    host: opts.host,
    port,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        // Envoy keeps upstream connections alive; close() alone would wait on them.
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Plain HTTP server answering 200 with a JSON echo of the request. */
export function startHttpUpstream(opts: { host: string; port?: number; name: string }): Promise<Upstream> {
  assertLoopback(opts.host);
  const requests: UpstreamRequest[] = [];
  return serveEcho(http.createServer(echoHandler(opts.name, requests)), opts, requests);
}

/** HTTPS variant of startHttpUpstream, serving cert. */
export function startTlsUpstream(opts: {
  host: string;
  port?: number;
  name: string;
  cert: { certPem: string; keyPem: string };
}): Promise<Upstream> {
  assertLoopback(opts.host);
  const requests: UpstreamRequest[] = [];
  const server = https.createServer({ cert: opts.cert.certPem, key: opts.cert.keyPem }, echoHandler(opts.name, requests));
  return serveEcho(server, opts, requests);
}

/** Accepts and immediately closes TCP connections, counting them. */
export async function startTcpTrap(opts: { host: string; port?: number; name: string }): Promise<TcpTrap> {
  assertLoopback(opts.host);
  let connections = 0;
  const server = net.createServer((socket) => {
    connections += 1;
    socket.on('error', () => undefined); // the peer may reset; irrelevant here
    socket.destroy();
  });
  const port = await listen(server, opts.host, opts.port ?? 0);
  return {
    name: opts.name,
    host: opts.host,
    port,
    get connections() {
      return connections;
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
