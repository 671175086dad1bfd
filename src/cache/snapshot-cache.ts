/**
 * Per-node snapshots built from the current policy set. Nodes of one agent that bind the same
 * listener address share one snapshot object (and so its encoded bytes). A policy change rebuilds
 * the watched snapshots whose inputs changed, and only watchers whose snapshot content changed are
 * notified: an unaffected sidecar is pushed nothing (SPEC §6.1).
 *
 * Cost of a change: the set is indexed by (tenant, agent) once; an agent whose applying policies
 * are the same objects as at its last build (the store reuses the parse of unchanged files) and
 * whose tenant's credentials did not change is skipped without building its IR; the others are
 * built, and translated only if their IR (as JSON) or credentials changed.
 *
 * This module never imports grpc-js: streams reach it through `ConfigWatcher` only
 * (ARCHITECTURE.md principle 3).
 */
import type { PolicySet } from '../policy/documents';
import type { EgressPolicy } from '../policy/schema';
import { buildAgentIrFrom, indexApplyingPolicies, type ApplyingIndex } from '../ir/build-ir';
import { accessKeys, revokesAccess, sameAccess } from '../ir/revocation';
import { InMemoryDrainEpochs, type DrainEpochs } from '../store/drain-epochs';
import type { AgentIr } from '../ir/agent-ir';
import { translate } from '../translate/translate';
import { checkReferences } from '../translate/check-references';
import type { CredentialValues, NodeFacts, TranslateOptions } from '../translate/options';
import type { ResourceSet } from '../translate/resource-set';
import { EncodedResourceTable, sha256, type EncodedResource } from './encoded';
import { makeSnapshot, type Snapshot } from './snapshot';
import { TYPE, type TypeUrl } from '../xds/type-urls';
import type { Logger } from '../util/logger';
import type { Result } from '../util/result';

export interface NodeDescriptor extends NodeFacts {
  tenant: string;
  agent: string;
}

export interface Watch {
  /** The current snapshot, if one could be built. */
  current: Snapshot | undefined;
  /** Why there is no snapshot (translation or encoding refused), for the stream to report. */
  error?: string;
  cancel(): void;
}

/** The one interface between the cache and the xDS streams. */
export interface ConfigWatcher {
  watch(node: NodeDescriptor, onChange: (snapshot: Snapshot) => void): Watch;
}

interface Entry {
  node: NodeDescriptor;
  irJson: string;
  /**
   * The inputs of the last successful build (when `irJson` was set): the agent's applying policies
   * and its tenant's credential digest. The same policy objects give the same IR (buildAgentIrFrom
   * is pure), so equal inputs mean equal `irJson` without building or stringifying anything.
   */
  inputs?: { policies: readonly EgressPolicy[]; credentials: string };
  snapshot: Snapshot | undefined;
  digest: string;
  error?: string;
  watchers: Set<(s: Snapshot) => void>;
}

/** A digest of a tenant's credential values, so a rotation rebuilds exactly the affected nodes. */
function credentialDigest(tenant: string, values: CredentialValues): string {
  const parts: string[] = [];
  for (const [key, v] of values) if (key.startsWith(`${tenant}/`)) parts.push(`${key}:${v.header}:${v.prefix ?? ''}:${sha256(v.value)}`);
  return sha256(parts.sort().join('\n'));
}

/** One agent's inputs within one rebuild, shared by its snapshots; the IR is built on first need. */
interface AgentInputs {
  tenant: string;
  agent: string;
  policies: EgressPolicy[];
  credentials: string;
  ir?: AgentIr;
  irJson?: string;
}

const sameObjects = <T>(a: readonly T[], b: readonly T[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * The snapshot key: the node facts its resources depend on. SotW and Delta ADS get the same
 * resources (the config source is `ads` for both, translate/config-source.ts), so the nodes of one
 * agent share one snapshot whichever ADS variant they speak; the per-type variants differ.
 */
const keyOf = (n: NodeDescriptor): string => `${n.tenant}/${n.agent}@${n.listen.address}:${n.listen.port}/${sourceKind(n.xdsProtocol)}/${n.mode ?? 'proxy'}`;
const sourceKind = (p: NodeDescriptor['xdsProtocol']): string => (p === 'sotw-per-type' || p === 'delta-per-type' ? p : 'ads');

export class SnapshotCache implements ConfigWatcher {
  private policies: PolicySet = { policies: [], credentials: [] };
  private credentials: CredentialValues = new Map();
  private readonly entries = new Map<string, Entry>();
  private readonly encoded = new EncodedResourceTable();
  /** `indexed` indexes `policies` when `indexed.set === policies` (rebuilt lazily after a change). */
  private indexed?: { set: PolicySet; index: ApplyingIndex };

  constructor(
    private readonly options: TranslateOptions,
    private readonly log: Logger,
    /** The translation; replaceable so a test can make Envoy reject a configuration (NACK). */
    private readonly translateFn: typeof translate = translate,
    /** Per-agent revocation epochs (persisted by the control plane across restarts). */
    private readonly drainEpochs: DrainEpochs = new InMemoryDrainEpochs(),
  ) {}

  /**
   * Replaces the policy set; rebuilds the watched snapshots whose inputs changed; notifies only
   * those whose content changed. `unchanged` counts both skipped and rebuilt-but-identical ones.
   */
  setPolicies(set: PolicySet, credentials?: CredentialValues): { changed: number; unchanged: number; failed: number } {
    this.policies = set;
    if (credentials) this.credentials = credentials;
    const counts = { changed: 0, unchanged: 0, failed: 0 };
    // Several snapshots of one agent (listen addresses, protocols) share its inputs and IR: look
    // them up and build them once, and only for agents with a snapshot to rebuild.
    const agents = new Map<string, AgentInputs>();
    const digests = new Map<string, string>();
    let translated = false;
    for (const entry of this.entries.values()) {
      const { tenant, agent } = entry.node;
      const agentKey = `${tenant}/${agent}`;
      let inputs = agents.get(agentKey);
      if (!inputs) {
        let credentials = digests.get(tenant);
        if (credentials === undefined) digests.set(tenant, (credentials = credentialDigest(tenant, this.credentials)));
        agents.set(agentKey, (inputs = { tenant, agent, policies: this.applying(tenant, agent), credentials }));
      }
      if (entry.snapshot && entry.inputs && entry.inputs.credentials === inputs.credentials && sameObjects(entry.inputs.policies, inputs.policies)) {
        counts.unchanged += 1;
        continue;
      }
      translated = true;
      const outcome = this.rebuild(entry, inputs);
      counts[outcome] += 1;
      if (outcome === 'changed' && entry.snapshot) for (const w of entry.watchers) w(entry.snapshot);
    }
    // Only a translation can have added encoded resources (or made some unused).
    if (translated) this.compact();
    return counts;
  }

  /**
   * Replaces the loaded credential values (rotation) and rebuilds; only nodes whose secrets changed
   * are notified.
   */
  setCredentials(values: CredentialValues): { changed: number; unchanged: number; failed: number } {
    return this.setPolicies(this.policies, values);
  }

  watch(node: NodeDescriptor, onChange: (snapshot: Snapshot) => void): Watch {
    const key = keyOf(node);
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { node, irJson: '', snapshot: undefined, digest: '', watchers: new Set() };
      this.entries.set(key, entry);
      this.rebuild(entry, { tenant: node.tenant, agent: node.agent, policies: this.applying(node.tenant, node.agent), credentials: credentialDigest(node.tenant, this.credentials) });
    }
    const e = entry;
    e.watchers.add(onChange);
    return {
      current: e.snapshot,
      ...(e.error !== undefined ? { error: e.error } : {}),
      cancel: () => {
        e.watchers.delete(onChange);
        if (e.watchers.size === 0 && this.entries.get(key) === e) {
          this.entries.delete(key);
          this.compact();
        }
      },
    };
  }

  /** Builds the resources of a node from the current policies (used by tests and `bootstrap`). */
  resourcesFor(node: NodeDescriptor): ResourceSet {
    return this.translateFn(buildAgentIrFrom(this.applying(node.tenant, node.agent), node.tenant, node.agent), node, this.options, this.credentials);
  }

  get watchedSnapshots(): number {
    return this.entries.size;
  }

  /** The policies that apply to an agent (as `applyingPolicies`), from an index of the current set. */
  private applying(tenant: string, agent: string): EgressPolicy[] {
    if (this.indexed?.set !== this.policies) this.indexed = { set: this.policies, index: indexApplyingPolicies(this.policies) };
    return this.indexed.index.applying(tenant, agent);
  }

  private rebuild(entry: Entry, inputs: AgentInputs): 'changed' | 'unchanged' | 'failed' {
    inputs.ir ??= buildAgentIrFrom(inputs.policies, inputs.tenant, inputs.agent);
    const ir = inputs.ir;
    // The inputs of this node's configuration: its IR and the credentials it uses (as digests:
    // the key is kept in memory only, and values do not belong in it).
    // (`cidrs` ranges hold bigints, which JSON.stringify refuses: written as decimal text.)
    inputs.irJson ??= JSON.stringify(ir, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + inputs.credentials;
    const irJson = inputs.irJson;
    if (entry.snapshot && irJson === entry.irJson) {
      entry.inputs = { policies: inputs.policies, credentials: inputs.credentials };
      return 'unchanged';
    }
    const drainEpoch = this.drainEpochFor(ir);
    const built = this.encodeSet(this.translateFn(ir, { ...entry.node, drainEpoch }, this.options, this.credentials));
    if (!built.ok) {
      entry.error = built.errors.join('; ');
      this.log.error({ node: keyOf(entry.node), errors: built.errors }, 'refused to publish an invalid snapshot; the last good one stays');
      return 'failed';
    }
    delete entry.error;
    entry.irJson = irJson;
    entry.inputs = { policies: inputs.policies, credentials: inputs.credentials };
    const digest = sha256([...built.value.resources.values()].flatMap((m) => [...m.values()].map((r) => `${r.typeUrl}/${r.name}=${r.hash}`)).join('\n'));
    if (digest === entry.digest) return 'unchanged';
    entry.snapshot = built.value;
    entry.digest = digest;
    return 'changed';
  }

  /**
   * The agent's drain epoch: bumped when this IR takes away access the agent had (a revocation),
   * so its listeners drain open tunnels; otherwise unchanged, also across restarts.
   */
  private drainEpochFor(ir: AgentIr): number {
    const agentKey = `${ir.tenant}/${ir.agent}`;
    const keys = accessKeys(ir);
    const state = this.drainEpochs.get(agentKey);
    if (!state) {
      this.drainEpochs.set(agentKey, { epoch: 0, keys });
      return 0;
    }
    if (sameAccess(state.keys, keys)) return state.epoch;
    const epoch = revokesAccess(state.keys, keys) ? state.epoch + 1 : state.epoch;
    this.drainEpochs.set(agentKey, { epoch, keys });
    return epoch;
  }

  private encodeSet(set: ResourceSet): Result<Snapshot> {
    const errors = checkReferences(set);
    const byType = new Map<TypeUrl, EncodedResource[]>();
    const groups: Array<[TypeUrl, ResourceSet[keyof ResourceSet]]> = [
      [TYPE.cluster, set.clusters],
      [TYPE.listener, set.listeners],
      [TYPE.route, set.routes],
      [TYPE.secret, set.secrets],
      [TYPE.endpoint, []],
    ];
    for (const [type, list] of groups) {
      const out: EncodedResource[] = [];
      for (const r of list) {
        const enc = this.encoded.encode(type, r.name, r.resource);
        if (enc.ok) out.push(enc.value);
        else errors.push(...enc.errors);
      }
      byType.set(type, out);
    }
    return errors.length > 0 ? { ok: false, errors } : { ok: true, value: makeSnapshot(byType) };
  }

  private compact(): void {
    const live = new Set<EncodedResource>();
    for (const e of this.entries.values()) e.snapshot?.resources.forEach((m) => m.forEach((r) => live.add(r)));
    this.encoded.retainOnly(live);
  }
}
