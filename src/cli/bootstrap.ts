/** `exitgate bootstrap`: print the Envoy bootstrap YAML of a sidecar (SPEC §3). */
import { isIP } from 'node:net';
import { bootstrapYaml, defaultAdminSocketPath, type BootstrapOptions } from '../envoy/bootstrap';
import { hostPortArg, nodeArg } from './args';
import { UsageError } from './errors';
import { XDS_PROTOCOLS, type XdsProtocol } from '../translate/options';

export interface BootstrapFlags {
  node: string;
  xds: string;
  listen: string;
  mode?: string;
  tlsDir?: string;
  adminSocket?: string;
  xdsProtocol?: string;
}

export function bootstrapOptions(flags: BootstrapFlags): BootstrapOptions {
  if (flags.mode && flags.mode !== 'proxy') {
    throw new UsageError(`--mode ${flags.mode} is not supported by this exitgate release yet (only proxy)`);
  }
  if (flags.tlsDir) throw new UsageError('--tls-dir (mTLS to the control plane) is not supported by this exitgate release yet');
  const protocol = flags.xdsProtocol ?? 'delta';
  if (!XDS_PROTOCOLS.includes(protocol as XdsProtocol)) {
    throw new UsageError(`--xds-protocol ${protocol} must be one of ${XDS_PROTOCOLS.join(', ')}`);
  }
  const node = nodeArg(flags.node);
  const listen = hostPortArg('--listen', flags.listen);
  if (isIP(listen.host) === 0) throw new UsageError(`--listen ${JSON.stringify(flags.listen)} must be IP:PORT (the address the agent uses as its proxy)`);
  return {
    node,
    xds: hostPortArg('--xds', flags.xds),
    listen: { address: listen.host, port: listen.port },
    adminSocketPath: flags.adminSocket ?? defaultAdminSocketPath(node),
    xdsProtocol: protocol as XdsProtocol,
  };
}

export function renderBootstrap(flags: BootstrapFlags): string {
  const yaml = bootstrapYaml(bootstrapOptions(flags));
  if (!yaml.ok) throw new Error(`internal: generated bootstrap is invalid: ${yaml.errors.join('; ')}`);
  return yaml.value;
}
