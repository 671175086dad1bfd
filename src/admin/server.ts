/**
 * The admin API (SPEC §4): health, readiness, metrics, connected nodes and effective policies.
 * With no tokens configured it serves loopback clients only, and says so at start-up.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../util/logger';
import type { Metrics } from '../util/metrics';
import type { NodeRegistry } from '../xds/node-registry';
import type { AgentIr } from '../ir/agent-ir';
import { effectivePolicyView } from './effective-view';

export interface AdminDeps {
  log: Logger;
  metrics: Metrics;
  registry: NodeRegistry;
  ready: () => boolean;
  effective: (tenant: string, agent: string) => AgentIr;
}

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

export class AdminServer {
  private readonly server: http.Server;

  constructor(private readonly deps: AdminDeps) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: Error) => {
        this.deps.log.error({ err: err.message }, 'admin request failed');
        if (!res.headersSent) send(res, 500, { error: 'internal error' });
      });
    });
  }

  async listen(host: string, port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    this.deps.log.warn('admin API: no tokens configured, serving loopback clients only');
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (!LOOPBACK.test(req.socket.remoteAddress ?? '')) return send(res, 403, { error: 'the admin API serves loopback clients only when no tokens are configured' });
    const url = new URL(req.url ?? '/', 'http://admin');
    if (req.method !== 'GET') return send(res, 405, { error: `${req.method} is not supported on ${url.pathname}` });
    if (url.pathname === '/healthz') return send(res, 200, { status: 'ok' });
    if (url.pathname === '/readyz') return this.deps.ready() ? send(res, 200, { status: 'ready' }) : send(res, 503, { status: 'not ready' });
    if (url.pathname === '/metrics') {
      res.writeHead(200, { 'content-type': this.deps.metrics.registry.contentType });
      res.end(await this.deps.metrics.registry.metrics());
      return;
    }
    if (url.pathname === '/v1/nodes') return send(res, 200, this.deps.registry.list());
    const eff = /^\/v1\/tenants\/([a-z0-9-]+)\/agents\/([a-z0-9-]+)\/effective$/.exec(url.pathname);
    if (eff) return send(res, 200, effectivePolicyView(this.deps.effective(eff[1]!, eff[2]!)));
    return send(res, 404, { error: `no route ${url.pathname}` });
  }
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify(body, null, 2)}\n`);
}
