/** The xDS gRPC server: ADS State-of-the-World streams over @grpc/grpc-js. */
import * as grpc from '@grpc/grpc-js';
import type { ConfigWatcher } from '../cache/snapshot-cache';
import type { Logger } from '../util/logger';
import type { Metrics } from '../util/metrics';
import { ADS_SERVICE } from './grpc-codec';
import type { DiscoveryRequestIn, DiscoveryResponseOut } from './messages';
import type { NodeRegistry } from './node-registry';
import { SotwStream } from './sotw-stream';

export interface XdsServerDeps {
  watcher: ConfigWatcher;
  registry: NodeRegistry;
  log: Logger;
  metrics: Metrics;
}

export class XdsServer {
  private readonly server = new grpc.Server({
    // Envoy keeps ADS streams open for hours; keepalive pings detect dead peers.
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
  });
  private streamCounter = 0;
  private readonly calls = new Set<grpc.ServerDuplexStream<DiscoveryRequestIn, DiscoveryResponseOut>>();

  constructor(private readonly deps: XdsServerDeps) {
    this.server.addService(ADS_SERVICE, {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequestIn, DiscoveryResponseOut>) => this.onAdsStream(call),
    });
  }

  /** Binds `host:port` (port 0 picks a free one); resolves to the bound port. */
  listen(host: string, port: number, credentials: grpc.ServerCredentials): Promise<number> {
    return new Promise((resolve, reject) => {
      const target = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
      this.server.bindAsync(target, credentials, (err, bound) => (err ? reject(err) : resolve(bound)));
    });
  }

  /** Stops accepting streams and ends the open ones. */
  async close(): Promise<void> {
    for (const call of this.calls) call.destroy();
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    this.server.forceShutdown();
  }

  private onAdsStream(call: grpc.ServerDuplexStream<DiscoveryRequestIn, DiscoveryResponseOut>): void {
    this.streamCounter += 1;
    const log = this.deps.log.child({ stream: this.streamCounter, peer: call.getPeer() });
    this.calls.add(call);
    const stream = new SotwStream(
      this.deps.watcher,
      this.deps.registry,
      {
        send: (res) => call.write(res),
        fail: (code, message) => call.destroy(Object.assign(new Error(message), { code, details: message })),
      },
      log,
      this.deps.metrics,
    );
    call.on('data', (req: DiscoveryRequestIn) => stream.onRequest(req));
    const finish = () => {
      this.calls.delete(call);
      stream.onClose();
    };
    call.on('end', () => {
      finish();
      call.end();
    });
    call.on('error', (err) => {
      log.debug({ err: err.message }, 'stream error');
      finish();
    });
    call.on('close', finish);
  }
}
