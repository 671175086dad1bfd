/** `exitgate bootstrap`: print the Envoy bootstrap YAML of a sidecar (SPEC §3). */
import { isIP } from 'node:net';
import { bootstrapYaml, defaultAdminSocketPath, type BootstrapOptions } from '../envoy/bootstrap';
import { hostPortArg, nodeArg } from './args';
import { UsageError } from './errors';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { SIDECAR_MODES, XDS_PROTOCOLS, type SidecarMode, type XdsProtocol } from '../translate/options';

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
  const mode = flags.mode ?? 'proxy';
  if (!SIDECAR_MODES.includes(mode as SidecarMode)) {
    throw new UsageError(`--mode ${mode} must be one of ${SIDECAR_MODES.join(', ')}`);
  }
  const protocol = flags.xdsProtocol ?? 'delta';
  if (!XDS_PROTOCOLS.includes(protocol as XdsProtocol)) {
    throw new UsageError(`--xds-protocol ${protocol} must be one of ${XDS_PROTOCOLS.join(', ')}`);
  }
  const node = nodeArg(flags.node);
  const listen = hostPortArg('--listen', flags.listen);
  if (isIP(listen.host) === 0) throw new UsageError(`--listen ${JSON.stringify(flags.listen)} must be IP:PORT (the address the agent uses as its proxy, or in transparent mode where redirected connections arrive)`);
  return {
    node,
    xds: hostPortArg('--xds', flags.xds),
    listen: { address: listen.host, port: listen.port },
    adminSocketPath: flags.adminSocket ?? defaultAdminSocketPath(node),
    xdsProtocol: protocol as XdsProtocol,
    mode: mode as SidecarMode,
    ...(flags.tlsDir ? { tlsDir: tlsDirArg(flags.tlsDir) } : {}),
  };
}

export function renderBootstrap(flags: BootstrapFlags): string {
  const yaml = bootstrapYaml(bootstrapOptions(flags));
  if (!yaml.ok) throw new Error(`internal: generated bootstrap is invalid: ${yaml.errors.join('; ')}`);
  return yaml.value;
}

function tlsDirArg(dir: string): string {
  for (const name of ['ca.crt', 'tls.crt', 'tls.key']) {
    if (!existsSync(path.join(dir, name))) throw new UsageError(`--tls-dir ${dir} has no ${name}; issue one with \`exitgate cert --node ... --ca CA_DIR --out ${dir}\``);
  }
  return path.resolve(dir);
}
