/**
 * The admin API (SPEC §4): health, readiness, metrics, connected nodes, effective policies,
 * recent decisions and their live stream, and policies read, written and deleted over HTTP.
 *
 * Auth (SPEC §4, auth.ts): with tokens configured, every route but /healthz and /readyz needs
 * `Authorization: Bearer <token>` (401 otherwise, with `WWW-Authenticate: Bearer`); an admin token
 * may use every route, a tenant token its tenant's routes and /v1/nodes (filtered to its nodes),
 * 403 elsewhere. With no tokens configured the API serves loopback clients only (and only requests
 * whose Host names loopback, against DNS rebinding from a browser), and says so at start-up.
 * Tokens are never logged: requests are logged with method, path, status and principal only.
 *
 * Decisions (`/v1/decisions`, `/v1/decisions/stream`, decisions.ts): any valid token; a tenant
 * token sees its own tenant's decisions only.
 *
 * Policies (`/v1/tenants/:t/policies[/:name]`):
 * - GET returns the policy in force as JSON (YAML with `Accept: application/yaml`) with its
 *   `ETag`, a strong content hash `"sha256-..."`; `If-None-Match` gives 304. The list gives
 *   names, revisions, source files and whether the API manages each.
 * - PUT takes one EgressPolicy (YAML or JSON, at most 1 MiB: 413; other media types: 415) whose
 *   metadata names the URL's tenant and policy. Invalid: 400 `{errors: [...]}`, the lines
 *   `exitgate validate` prints for the file it would be stored in (`policies/acme/web.yaml: doc 1:
 *   ...`). `If-Match` is optional (without it the last writer wins, as in Kubernetes); a stale
 *   one is 409 with `currentEtag`; `If-None-Match: *` creates only. 201 (created) or 200, after
 *   the store has applied the change, i.e. it is in the snapshot cache the sidecars' streams watch.
 * - DELETE honours `If-Match` the same way; 204, or 404.
 * - A policy defined in a hand-written file (not alone in `<tenant>/<name>.yaml`) is read-only
 *   here: PUT/DELETE give 409 naming the file. While another file of the directory is invalid,
 *   writes give 409 (the errors are shown to admin tokens only: they may concern other tenants).
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { stringify as toYaml } from 'yaml';
import type { Logger } from '../util/logger';
import type { Metrics } from '../util/metrics';
import type { NodeRegistry } from '../xds/node-registry';
import type { AgentIr } from '../ir/agent-ir';
import type { FilePolicyStore } from '../store/file-store';
import type { EgressPolicy } from '../policy/schema';
import { formatPolicyError, type PolicyError } from '../policy/errors';
import type { TokenConfig } from '../config/tokens';
import { effectivePolicyView } from './effective-view';
import { authorize, principalLabel, TokenAuthenticator, type Principal } from './auth';
import { matchRoute, type RouteMatch } from './routes';
import { HttpError, mediaType, parseEntityTags, readBody, sendError, sendJson, sendText, wantsYaml } from './http';
import { bodyFormat, parsePolicyBody } from './policy-body';
import { listDecisions, streamDecisions, type DecisionSource } from './decisions';

/** What the admin API needs of a policy store. */
export type AdminPolicyStore = Pick<FilePolicyStore, 'getPolicy' | 'listPolicies' | 'putPolicy' | 'deletePolicy' | 'displayPath'>;

export interface AdminDeps {
  log: Logger;
  metrics: Metrics;
  registry: NodeRegistry;
  ready: () => boolean;
  effective: (tenant: string, agent: string) => AgentIr;
  store: AdminPolicyStore;
  /** Admin and tenant tokens; none (or empty) = loopback-only mode. */
  tokens?: TokenConfig;
  /** Recent decisions and their live stream (GET /v1/decisions[/stream]). */
  decisions?: DecisionSource;
  /** Largest accepted request body (default 1 MiB). */
  maxBodyBytes?: number;
}

export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;
const LOOPBACK_HOST = /^(localhost|127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\])(:\d+)?$/i;

export class AdminServer {
  private readonly server: http.Server;
  private readonly auth: TokenAuthenticator;

  constructor(private readonly deps: AdminDeps) {
    this.auth = TokenAuthenticator.from(deps.tokens);
    this.server = http.createServer((req, res) => {
      const started = performance.now();
      const ctx: { principal?: Principal } = {};
      this.handle(req, res, ctx)
        .catch((err: Error) => {
          if (err instanceof HttpError) {
            if (!res.headersSent) sendError(res, err.status, err.message, {}, err.status === 413 ? { connection: 'close' } : {});
            return;
          }
          this.deps.log.error({ err: err.message }, 'admin request failed');
          if (!res.headersSent) sendError(res, 500, 'internal error');
          else res.destroy();
        })
        .finally(() => {
          // Never the headers: the Authorization header holds a token.
          this.deps.log.debug(
            { method: req.method, path: (req.url ?? '').split('?')[0], status: res.statusCode, principal: principalLabel(ctx.principal), ms: +(performance.now() - started).toFixed(2) },
            'admin request',
          );
        });
    });
  }

  async listen(host: string, port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    if (!this.auth.enabled) this.deps.log.warn('admin API: no tokens configured, serving loopback clients only');
    else {
      const t = this.deps.tokens!;
      // Counts and tenant names only, never a token.
      this.deps.log.info({ adminTokens: t.admin.length, tenants: Object.keys(t.tenants).filter((k) => t.tenants[k]!.length > 0).sort() }, 'admin API: bearer tokens required');
    }
    if (this.auth.enabled && !/^(127\.|::1$|localhost$)/.test(host)) {
      this.deps.log.warn({ listen: host }, 'admin API: tokens travel in clear text over HTTP; expose this port only through a TLS-terminating proxy or a trusted network');
    }
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, ctx: { principal?: Principal }): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const match = matchRoute(url.pathname);
    const isPublic = match?.scope.kind === 'public';

    if (this.auth.enabled) {
      if (!isPublic) {
        const authn = this.auth.authenticate(req.headers.authorization);
        if (!authn.ok) {
          const challenge = authn.reason === 'missing' ? 'Bearer realm="exitgate"' : `Bearer realm="exitgate", error="${authn.reason === 'malformed' ? 'invalid_request' : 'invalid_token'}"`;
          const message =
            authn.reason === 'missing'
              ? 'this route needs a token: send Authorization: Bearer <token>'
              : authn.reason === 'malformed'
                ? 'the Authorization header must be "Bearer <token>"'
                : 'the token is not valid';
          return sendError(res, 401, message, {}, { 'www-authenticate': challenge });
        }
        ctx.principal = authn.principal;
      }
    } else {
      if (!LOOPBACK.test(req.socket.remoteAddress ?? '')) return sendError(res, 403, 'the admin API serves loopback clients only when no tokens are configured');
      const host = req.headers.host;
      if (host !== undefined && !LOOPBACK_HOST.test(host)) {
        return sendError(res, 403, 'with no tokens configured the admin API answers only requests addressed to a loopback host (Host: 127.0.0.1 or localhost)');
      }
      ctx.principal = { kind: 'admin' };
    }

    if (!match) return sendError(res, 404, `no route ${url.pathname}`);
    const method = req.method ?? 'GET';
    if (!match.route.methods.includes(method)) {
      return sendError(res, 405, `${method} is not supported on ${url.pathname}`, {}, { allow: match.route.methods.join(', ') });
    }
    if (!isPublic) {
      const authz = authorize(ctx.principal!, match.scope);
      if (!authz.ok) return sendError(res, 403, authz.reason);
    }
    return this.dispatch(req, res, match, ctx.principal);
  }

  private async dispatch(req: http.IncomingMessage, res: http.ServerResponse, m: RouteMatch, principal: Principal | undefined): Promise<void> {
    const [a, b] = m.params as [string, string];
    switch (m.route.name) {
      case 'healthz':
        return sendJson(res, 200, { status: 'ok' });
      case 'readyz':
        return this.deps.ready() ? sendJson(res, 200, { status: 'ready' }) : sendJson(res, 503, { status: 'not ready' });
      case 'metrics':
        return sendText(res, 200, this.deps.metrics.registry.contentType, await this.deps.metrics.registry.metrics());
      case 'nodes': {
        const nodes = this.deps.registry.list();
        return sendJson(res, 200, principal?.kind === 'tenant' ? nodes.filter((n) => n.tenant === principal.tenant) : nodes);
      }
      case 'decisions':
      case 'decisions-stream': {
        if (!this.deps.decisions) return sendError(res, 404, 'decisions are not recorded by this server');
        const url = new URL(req.url ?? '/', 'http://admin');
        if (m.route.name === 'decisions') return listDecisions(res, this.deps.decisions, url, principal);
        return streamDecisions(req, res, this.deps.decisions, url, principal);
      }
      case 'effective':
        return sendJson(res, 200, effectivePolicyView(this.deps.effective(a, b)));
      case 'policies':
        return sendJson(res, 200, {
          tenant: a,
          policies: this.deps.store.listPolicies(a).map((p) => ({ name: p.policy.metadata.name, etag: p.etag, agents: p.policy.spec.agents, file: p.file, doc: p.doc, managed: p.managed })),
        });
      case 'policy':
        if (req.method === 'GET') return this.getPolicy(req, res, a, b);
        if (req.method === 'PUT') return this.putPolicy(req, res, a, b, principal);
        return this.deletePolicy(req, res, a, b, principal);
    }
  }

  private getPolicy(req: http.IncomingMessage, res: http.ServerResponse, tenant: string, name: string): void {
    const p = this.deps.store.getPolicy(tenant, name);
    if (!p) return sendError(res, 404, `policy ${tenant}/${name} does not exist`);
    const inm = parseEntityTags(req.headers['if-none-match'], 'If-None-Match');
    if (inm === '*' || inm?.some((t) => t.replace(/^W\//, '') === p.etag)) {
      res.writeHead(304, { etag: p.etag, 'cache-control': 'no-store' });
      res.end();
      return;
    }
    this.sendPolicy(req, res, 200, p.policy, { etag: p.etag });
  }

  private async putPolicy(req: http.IncomingMessage, res: http.ServerResponse, tenant: string, name: string, principal: Principal | undefined): Promise<void> {
    const text = await readBody(req, this.deps.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
    const format = bodyFormat(mediaType(req));
    if (!format) return sendError(res, 415, `unsupported Content-Type ${mediaType(req)}; send application/yaml or application/json`);
    const ifMatch = parseEntityTags(req.headers['if-match'], 'If-Match');
    const ifNoneMatch = parseEntityTags(req.headers['if-none-match'], 'If-None-Match');

    const body = parsePolicyBody(this.deps.store.displayPath(tenant, name), text, format, tenant, name);
    if (!body.ok) return sendJson(res, 400, { errors: body.errors.map(formatPolicyError) });

    const r = await this.deps.store.putPolicy(body.value, { ...(ifMatch ? { ifMatch } : {}), ...(ifNoneMatch ? { ifNoneMatch } : {}) });
    if (!r.ok) return this.sendRefusal(res, r, principal);
    this.deps.log.info({ tenant, policy: name, etag: r.etag, created: r.created, principal: principalLabel(principal) }, r.created ? 'policy created' : 'policy replaced');
    if (!r.applied) return this.sendNotApplied(res, r.etag, r.applyErrors ?? [], principal);
    const location = `/v1/tenants/${tenant}/policies/${name}`;
    this.sendPolicy(req, res, r.created ? 201 : 200, r.policy, { etag: r.etag, ...(r.created ? { location } : {}) });
  }

  private async deletePolicy(req: http.IncomingMessage, res: http.ServerResponse, tenant: string, name: string, principal: Principal | undefined): Promise<void> {
    const ifMatch = parseEntityTags(req.headers['if-match'], 'If-Match');
    const r = await this.deps.store.deletePolicy(tenant, name, ifMatch ? { ifMatch } : {});
    if (!r.ok) return this.sendRefusal(res, r, principal);
    this.deps.log.info({ tenant, policy: name, etag: r.etag, principal: principalLabel(principal) }, 'policy deleted');
    if (!r.applied) return this.sendNotApplied(res, undefined, r.applyErrors ?? [], principal);
    res.writeHead(204, { 'cache-control': 'no-store' });
    res.end();
  }

  private sendPolicy(req: http.IncomingMessage, res: http.ServerResponse, status: number, policy: EgressPolicy, headers: http.OutgoingHttpHeaders): void {
    if (wantsYaml(req)) return sendText(res, status, 'application/yaml', toYaml(policy, { lineWidth: 0 }), headers);
    return sendJson(res, status, policy, headers);
  }

  private sendRefusal(res: http.ServerResponse, r: Exclude<Awaited<ReturnType<AdminPolicyStore['putPolicy']>>, { ok: true }>, principal: Principal | undefined): void {
    switch (r.reason) {
      case 'invalid':
        return sendJson(res, 400, { errors: r.errors.map(formatPolicyError) });
      case 'conflict':
        return sendError(res, 409, r.message, r.etag ? { currentEtag: r.etag } : {});
      case 'not-found':
        return sendError(res, 404, r.message);
      case 'blocked':
        // Other files' errors may concern other tenants: only an admin sees them.
        return sendError(res, 409, r.message, principal?.kind === 'admin' ? { errors: r.errors.map(formatPolicyError) } : {});
    }
  }

  /** Written, but a concurrent hand edit made the directory invalid: the last good set stays in force. */
  private sendNotApplied(res: http.ServerResponse, etag: string | undefined, errors: PolicyError[], principal: Principal | undefined): void {
    sendJson(
      res,
      202,
      {
        warning: 'the change was written, but the policy directory is invalid (another change arrived meanwhile), so the last good policies stay in force until it is fixed',
        ...(principal?.kind === 'admin' ? { errors: errors.map(formatPolicyError) } : {}),
      },
      etag ? { etag } : {},
    );
  }
}
