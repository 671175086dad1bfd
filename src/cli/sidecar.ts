/** `exitgate sidecar`: bootstrap and run a managed Envoy (the pinned version, installed if missing). */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { locateEnvoy } from '../envoy/locate';
import { startEnvoy } from '../envoy/process';
import { bootstrapOptions, renderBootstrap, type BootstrapFlags } from './bootstrap';

export async function sidecar(flags: BootstrapFlags & { logLevel?: string }): Promise<number> {
  const options = bootstrapOptions(flags);
  const bin = await locateEnvoy();
  const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-sidecar-'));
  const envoy = await startEnvoy({
    bin,
    configYaml: renderBootstrap({ ...flags, adminSocket: options.adminSocketPath }),
    workDir,
    adminSocketPath: options.adminSocketPath,
    logLevel: flags.logLevel ?? 'warn',
    onLog: (line) => process.stderr.write(`${line}\n`),
  });
  process.stderr.write(`exitgate: sidecar Envoy pid ${envoy.pid}, proxy ${flags.listen}, admin socket ${options.adminSocketPath}\n`);
  const stop = () => void envoy.stop();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const code = await envoy.exited;
  return code ?? 0;
}
