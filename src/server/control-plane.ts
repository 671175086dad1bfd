/**
 * Wiring of the control plane (`exitgate serve`): policy store -> snapshot cache -> xDS server,
 * and the admin API beside them. No logic of its own beyond connecting the pieces.
 */
import * as grpc from '@grpc/grpc-js';
import { FilePolicyStore } from '../store/file-store';
import { CredentialStore } from '../credentials/credential-store';
import { FileDrainEpochs } from '../store/drain-epochs';
import { SnapshotCache } from '../cache/snapshot-cache';
import { XdsServer } from '../xds/server';
import { NodeRegistry } from '../xds/node-registry';
import { csdsService } from '../xds/csds';
import { accessLogService } from '../audit/als-service';
import { DecisionTrail, type DecisionTrailOptions } from '../audit/decision-trail';
import { openDecisionLog } from '../audit/decision-log';
import { loadServerTls } from '../identity/server-tls';
import { AdminServer } from '../admin/server';
import { buildAgentIr } from '../ir/build-ir';
import { formatPolicyError } from '../policy/errors';
import { envoyApi } from '../xds/proto';
import type { Logger } from '../util/logger';
import { Metrics } from '../util/metrics';
import type { TranslateOptions } from '../translate/options';
import type { translate } from '../translate/translate';
import type { TokenConfig } from '../config/tokens';

export interface ControlPlaneOptions extends TranslateOptions {
  policiesDir: string;
  xdsListen: { host: string; port: number };
  adminListen: { host: string; port: number };
  log: Logger;
  /** Test hook: wraps the translation (e.g. to produce a configuration Envoy rejects). */
  translate?: typeof translate;
  /** How long a node's status is kept after its last stream closes. */
  nodeGraceMs?: number;
  /** Where the control plane keeps state across restarts (drain epochs); see FileDrainEpochs.pathIn. */
  stateDir?: string;
  /** mTLS for xDS (ca.crt, tls.crt, tls.key); absent means --insecure-xds. */
  xdsTlsDir?: string;
  /** Admin API tokens (admin and per tenant); none means the admin API serves loopback only. */
  adminTokens?: TokenConfig;
  /** Decision events as JSON lines to this file (`serve --decisions-log`); default: the main log. */
  decisionsLog?: string;
  /** Decisions kept for GET /v1/decisions (default 10,000). */
  decisionBuffer?: number;
  /** Test hook: every access log entry as received. */
  onAccessLogEntry?: DecisionTrailOptions['onEntry'];
}

export interface RunningControlPlane {
  xdsPort: number;
  adminPort: number;
  cache: SnapshotCache;
  registry: NodeRegistry;
  store: FilePolicyStore;
  metrics: Metrics;
  decisions: DecisionTrail;
  stop(): Promise<void>;
}

export async function startControlPlane(o: ControlPlaneOptions): Promise<RunningControlPlane> {
  const log = o.log;
  envoyApi(); // load Envoy's API before taking connections
  // First, so that an unusable --decisions-log fails before anything is started.
  const decisionLog = await openDecisionLog(log, o.decisionsLog);
  const metrics = new Metrics({ defaultMetrics: true });
  const registry = new NodeRegistry(o.nodeGraceMs !== undefined ? { graceMs: o.nodeGraceMs } : {});
  const cache = new SnapshotCache({ guardAllow: o.guardAllow, ...(o.dnsResolver ? { dnsResolver: o.dnsResolver } : {}), ...(o.upstreamCaPem ? { upstreamCaPem: o.upstreamCaPem } : {}) }, log.child({ module: 'cache' }), o.translate, new FileDrainEpochs(FileDrainEpochs.pathIn(o.stateDir, o.policiesDir), log.child({ module: 'drain-epochs' })));
  const store = new FilePolicyStore(o.policiesDir);

  const credentials = new CredentialStore(o.policiesDir, log.child({ module: 'credentials' }));
  credentials.on('change', () => {
    const counts = cache.setCredentials(credentials.current());
    log.info({ module: 'credentials', ...counts }, 'credentials reloaded (rotation)');
  });
  store.on('policies', (set) => {
    const started = performance.now();
    credentials.setCredentials(set.credentials);
    const counts = cache.setPolicies(set, credentials.current());
    metrics.policyReloads.inc({ result: 'applied' });
    // ms: setPolicies (rebuild and push); the store's stages of the read before it (ApplyTiming).
    log.info({ module: 'store', policies: set.policies.length, ...counts, ms: +(performance.now() - started).toFixed(2), ...store.applyTiming }, 'policies applied');
  });
  store.on('invalid', (errors) => {
    metrics.policyReloads.inc({ result: 'rejected' });
    log.error({ module: 'store', errors: errors.map(formatPolicyError) }, 'policy change rejected; the last good policies stay in force');
  });
  const first = await store.start();
  if (!first.ok) throw new Error(`invalid policies in ${o.policiesDir}:\n${first.errors.map(formatPolicyError).join('\n')}`);

  const tls = o.xdsTlsDir ? loadServerTls(o.xdsTlsDir) : undefined;
  const decisions = new DecisionTrail({
    log: decisionLog.log,
    metrics,
    ...(o.decisionBuffer !== undefined ? { capacity: o.decisionBuffer } : {}),
    ...(o.onAccessLogEntry ? { onEntry: o.onAccessLogEntry } : {}),
  });
  const als = accessLogService({ receiver: decisions, log: log.child({ module: 'audit' }), metrics, ...(tls ? { trust: tls.anchor } : {}) });
  const xds = new XdsServer({ watcher: cache, registry, log: log.child({ module: 'xds' }), metrics, ...(tls ? { trust: tls.anchor } : {}) }, [csdsService(registry, tls?.anchor), als]);
  const xdsPort = await xds.listen(o.xdsListen.host, o.xdsListen.port, tls?.credentials ?? grpc.ServerCredentials.createInsecure());
  await tls?.ready;
  let ready = true;
  const admin = new AdminServer({
    log: log.child({ module: 'admin' }),
    metrics,
    registry,
    ready: () => ready,
    effective: (t, a) => buildAgentIr(store.current ?? { policies: [], credentials: [] }, t, a),
    store,
    decisions,
    ...(o.adminTokens ? { tokens: o.adminTokens } : {}),
  });
  const adminPort = await admin.listen(o.adminListen.host, o.adminListen.port);
  log.info({ xds: `${o.xdsListen.host}:${xdsPort}`, admin: `${o.adminListen.host}:${adminPort}` }, 'exitgate control plane listening');
  return {
    xdsPort,
    adminPort,
    cache,
    registry,
    store,
    metrics,
    decisions,
    stop: async () => {
      ready = false;
      store.stop();
      credentials.stop();
      await Promise.all([xds.close(), admin.close()]);
      await decisionLog.close();
    },
  };
}
