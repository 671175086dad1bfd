/** Prometheus metrics of the control plane, served at GET /metrics (SPEC §4). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly connectedNodes = new Gauge({ name: 'exitgate_xds_connected_nodes', help: 'Nodes with at least one open xDS stream', registers: [this.registry] });
  readonly pushes = new Counter({ name: 'exitgate_xds_pushes_total', help: 'xDS responses sent', labelNames: ['type'], registers: [this.registry] });
  readonly requests = new Counter({ name: 'exitgate_xds_requests_total', help: 'xDS requests received (subscriptions, ACKs, NACKs)', labelNames: ['type'], registers: [this.registry] });
  readonly acks = new Counter({ name: 'exitgate_xds_acks_total', help: 'xDS ACKs received', labelNames: ['type'], registers: [this.registry] });
  readonly nacks = new Counter({ name: 'exitgate_xds_nacks_total', help: 'xDS NACKs received', labelNames: ['type'], registers: [this.registry] });
  readonly pushLatency = new Histogram({
    name: 'exitgate_xds_push_ack_seconds',
    help: 'Time from sending an xDS response to its ACK',
    labelNames: ['type'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  /** SPEC §5: one per decision event (a CONNECT tunnel counts once, when established). */
  readonly decisions = new Counter({ name: 'exitgate_decisions_total', help: 'Decisions made by sidecars, from their access logs', labelNames: ['tenant', 'agent', 'verdict'], registers: [this.registry] });
  readonly accessLogStreams = new Gauge({ name: 'exitgate_access_log_streams', help: 'Open access log streams from sidecars (one per Envoy worker and log)', registers: [this.registry] });
  readonly accessLogEntries = new Counter({
    name: 'exitgate_access_log_entries_total',
    help: 'Access log entries received, by what they became (decision, tunnel-closed, ignored)',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly policyReloads = new Counter({ name: 'exitgate_policy_reloads_total', help: 'Policy loads by result', labelNames: ['result'], registers: [this.registry] });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
  }
}
