import * as http from 'node:http';
import * as net from 'node:net';
import * as tls from 'node:tls';

/**
 * Clients that talk to an explicit HTTP proxy (the Envoy sidecar) the way an
 * agent's HTTP library would, with the request line and Host header under the
 * caller's exact control so tests can probe policy edge cases.
 */

export interface ProxyAddress {
  host: string;
  port: number;
}

export interface ConnectResult {
  /** HTTP status of the CONNECT reply; 0 if the proxy closed without replying. */
  status: number;
  /** The tunnel, only when status is 200. The caller owns and must end it. */
  socket?: net.Socket;
  /** Raw response head (status line and headers), or why there is none. */
  headerText: string;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * Sends `CONNECT target` and parses the reply head. Rejects on timeout or if
 * the proxy cannot be reached at all; a proxy that accepts and then closes
 * without a reply counts as a refusal (status 0), since that is one way a
 * denied tunnel looks from the client side.
 */
export function connectThroughProxy(
  proxy: ProxyAddress,
  target: string,
  opts: { timeoutMs?: number } = {},
): Promise<ConnectResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: proxy.host, port: proxy.port });
    let connected = false;
    let head = Buffer.alloc(0);
    let settled = false;
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      fn();
    };
    const timer = setTimeout(() => {
      finish(() => reject(new Error(`CONNECT ${target} via ${proxy.host}:${proxy.port} timed out after ${timeoutMs} ms`)));
      socket.destroy();
    }, timeoutMs);

    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const headerText = head.subarray(0, end).toString('latin1');
      const rest = head.subarray(end + 4);
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(headerText);
      const status = match ? Number(match[1]) : 0;
      finish(() => {
        if (status === 200) {
          // Bytes past the head already belong to the tunnelled stream.
          if (rest.length > 0) socket.unshift(rest);
          resolve({ status, socket, headerText });
        } else {
          socket.destroy();
          resolve({ status, headerText });
        }
      });
    };

    socket.on('connect', () => {
      connected = true;
      socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
    });
    socket.on('data', onData);
    socket.on('error', (err) => {
      if (!connected) finish(() => reject(new Error(`cannot reach proxy ${proxy.host}:${proxy.port}: ${err.message}`)));
      else finish(() => resolve({ status: 0, headerText: `connection error before reply: ${err.message}` }));
    });
    socket.on('close', () => finish(() => resolve({ status: 0, headerText: 'connection closed before reply' })));
  });
}

export interface HttpsViaConnectResult {
  status: number;
  body: string;
  connectStatus: number;
}

/**
 * CONNECT, then TLS to the target verified against caPem and servername,
 * then `GET path`. A refused CONNECT is reported (status = connectStatus),
 * a TLS or HTTP failure inside the tunnel rejects.
 */
export async function httpsViaConnect(
  proxy: ProxyAddress,
  req: { host: string; port: number; path: string; caPem: string; servername?: string; timeoutMs?: number },
): Promise<HttpsViaConnectResult> {
  const timeoutMs = req.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const tunnel = await connectThroughProxy(proxy, `${req.host}:${req.port}`, { timeoutMs });
  if (tunnel.status !== 200 || !tunnel.socket) {
    return { status: tunnel.status, body: '', connectStatus: tunnel.status };
  }
  const rawSocket = tunnel.socket;
  const tlsSocket = tls.connect({
    socket: rawSocket,
    ca: req.caPem,
    servername: req.servername ?? req.host,
    ALPNProtocols: ['http/1.1'],
  });
  try {
    const res = await request(
      {
        // We hand over the ready TLS stream; node:http then speaks HTTP/1.1 on it.
        createConnection: () => tlsSocket,
        method: 'GET',
        path: req.path,
        headers: { host: `${req.host}:${req.port}` },
      },
      timeoutMs,
    );
    return { status: res.status, body: res.body, connectStatus: 200 };
  } finally {
    tlsSocket.destroy();
    rawSocket.destroy();
  }
}

export interface HttpViaProxyResult {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/**
 * Absolute-form request (`GET http://host:port/path HTTP/1.1`) to the proxy,
 * as plain-HTTP proxy clients send it. hostHeader overrides Host, e.g. to
 * test a Host that disagrees with the request URI.
 */
export function httpViaProxy(
  proxy: ProxyAddress,
  url: string,
  opts: { method?: string; headers?: Record<string, string>; hostHeader?: string; body?: string; timeoutMs?: number } = {},
): Promise<HttpViaProxyResult> {
  const target = new URL(url);
  if (target.protocol !== 'http:') throw new Error(`httpViaProxy needs an http:// URL, got ${url}`);
  const headers: Record<string, string> = { ...(opts.headers ?? {}), host: opts.hostHeader ?? target.host };
  if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body));
  return request(
    {
      host: proxy.host,
      port: proxy.port,
      method: opts.method ?? 'GET',
      path: url,
      // setHost:false + explicit header: Node must not derive Host from the proxy address.
      setHost: false,
      headers,
      // A fresh connection per request keeps tests independent of each other.
      agent: false,
    },
    opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    opts.body,
  );
}

function request(options: http.RequestOptions, timeoutMs: number, body?: string): Promise<HttpViaProxyResult> {
  return new Promise((resolve, reject) => {
    const req = http.request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }),
      );
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`request ${options.method} ${options.path} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}
