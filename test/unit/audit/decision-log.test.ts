/**
 * The JSON-lines sink (`serve --decisions-log FILE`) and the access log configuration the sidecars
 * get (translate/filters/access-log.ts), encoded strictly against Envoy 1.40's API.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openDecisionLog } from '../../../src/audit/decision-log';
import { DecisionTrail } from '../../../src/audit/decision-trail';
import { silentLogger } from '../../../src/util/logger';
import { hcmAccessLog, hcmAccessLogOptions, listenerAccessLog } from '../../../src/translate/filters/access-log';
import { encodeStrict } from '../../../src/xds/proto';
import { XDS_CLUSTER } from '../../../src/translate/names';

describe('decisions log file', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-dlog-'));
  });
  afterAll(() => fs.rm(dir, { recursive: true, force: true }));

  it('appends one JSON line per decision and per tunnel close, creating the directory', async () => {
    const file = path.join(dir, 'sub', 'decisions.jsonl');
    const sink = await openDecisionLog(silentLogger(), file);
    const trail = new DecisionTrail({ log: sink.log });
    const base = { time: '2026-01-01T00:00:00.000Z', tenant: 'acme', agent: 'coder', instance: 'i', host: 'api.test', port: 443, method: 'CONNECT', bytesSent: 1, bytesReceived: 2, durationMs: 3 };
    trail.apply({ kind: 'decision', tunnelKey: 'k', decision: { ...base, verdict: 'allow', policy: 'p', rule: 'r', reason: 'allowed by p/r', tunnel: 'open' } });
    trail.apply({ kind: 'tunnel-end', tunnelKey: 'k', decision: { ...base, verdict: 'allow', policy: 'p', rule: 'r', reason: 'allowed by p/r', tunnel: 'closed', bytesSent: 100 } });
    trail.apply({ kind: 'decision', decision: { ...base, host: 'exfil.test', verdict: 'deny', reason: 'no rule matches' } });
    await sink.close();
    // A restarted control plane appends.
    const again = await openDecisionLog(silentLogger(), file);
    new DecisionTrail({ log: again.log }).apply({ kind: 'decision', decision: { ...base, verdict: 'deny', reason: 'no rule matches' } });
    await again.close();
    const lines = (await fs.readFile(file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.msg, l.module, l.level])).toEqual([
      ['decision', 'decisions', 30],
      ['tunnel closed', 'decisions', 30],
      ['decision', 'decisions', 30],
      ['decision', 'decisions', 30],
    ]);
    expect(lines[0]!.decision).toMatchObject({ id: 1, verdict: 'allow', policy: 'p', rule: 'r', tunnel: 'open' });
    expect(lines[1]!.tunnelClosed).toMatchObject({ id: 1, bytesSent: 100 });
    expect(lines[2]!.decision).toMatchObject({ id: 2, verdict: 'deny', reason: 'no rule matches', host: 'exfil.test' });
    expect(lines[3]!.decision).toMatchObject({ id: 1, verdict: 'deny' });
  });

  it('says which flag is wrong when the file cannot be written', async () => {
    const blocker = path.join(dir, 'not-a-dir');
    await fs.writeFile(blocker, '');
    await expect(openDecisionLog(silentLogger(), path.join(blocker, 'decisions.jsonl'))).rejects.toThrow(/^--decisions-log .*not-a-dir\/decisions\.jsonl: /);
  });

  it('without a file, decisions go to the main log as a child logger', async () => {
    const sink = await openDecisionLog(silentLogger(), undefined);
    expect(sink.log.bindings()).toMatchObject({ module: 'decisions' });
    await sink.close();
  });
});

describe('access log configuration', () => {
  const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
  const LISTENER = 'type.googleapis.com/envoy.config.listener.v3.Listener';

  it('encodes strictly, streams to the xDS cluster over the v3 API, and logs no request header', () => {
    const hcm = { stat_prefix: 'x', route_config: {}, access_log: hcmAccessLog(), access_log_options: hcmAccessLogOptions() };
    expect(encodeStrict(HCM, hcm)).toMatchObject({ ok: true });
    expect(encodeStrict(LISTENER, { name: 'l', access_log: listenerAccessLog() })).toMatchObject({ ok: true });
    for (const log of [...hcmAccessLog(), ...listenerAccessLog()]) {
      const common = (log.typed_config as { common_config: Record<string, unknown> }).common_config;
      expect(common).toMatchObject({ transport_api_version: 'V3', grpc_service: { envoy_grpc: { cluster_name: XDS_CLUSTER } } });
      expect(Object.keys(log.typed_config as object)).toEqual(['@type', 'common_config']);
    }
    expect(hcmAccessLogOptions()).toEqual({ flush_log_on_tunnel_successfully_established: true });
  });

  it('a misspelt field is an error, never silently dropped', () => {
    const [log] = hcmAccessLog();
    const typo = { ...log, typed_config: { ...(log!.typed_config as object), common_config: { log_nmae: 'x' } } };
    const r = encodeStrict(HCM, { stat_prefix: 'x', route_config: {}, access_log: [typo] });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.errors.join('\n')).toMatch(/log_nmae/);
  });
});
