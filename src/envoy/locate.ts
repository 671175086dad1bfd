import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The Envoy release this control plane is built and tested against. */
export const PINNED_ENVOY_VERSION = '1.40.0';

const PROJECT_NAME = 'exitgate';

/**
 * The project root: the nearest ancestor of this file whose package.json is
 * named "exitgate". Walking up (instead of a fixed "../..") keeps this correct
 * both from src/envoy under ts-jest and from dist/envoy after tsc.
 */
export function projectRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pkgPath = path.join(dir, 'package.json');
    if (fs.existsSync(pkgPath)) {
      try {
        const pkg = JSON.parse(fs.readFileSync(pkgPath, 'utf8')) as { name?: unknown };
        if (pkg.name === PROJECT_NAME) return dir;
      } catch {
        // An unreadable package.json is not ours; keep walking.
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) {
      throw new Error(`cannot find the ${PROJECT_NAME} project root above ${__dirname}`);
    }
    dir = parent;
  }
}

function isExecutableFile(p: string): boolean {
  try {
    if (!fs.statSync(p).isFile()) return false;
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The real ELF inside .venv/envoy. The venv's bin/envoy is a Python wrapper
 * that would add a python process between us and Envoy (signals, pid), so it
 * is deliberately not used. The python3.X directory is discovered, not assumed.
 */
function findVenvEnvoy(root: string): string | undefined {
  const libDir = path.join(root, '.venv', 'envoy', 'lib');
  let entries: string[];
  try {
    entries = fs.readdirSync(libDir);
  } catch {
    return undefined;
  }
  for (const entry of entries.filter((e) => /^python3\.\d+$/.test(e)).sort()) {
    const candidate = path.join(libDir, entry, 'site-packages', 'envoy', '_bin', 'envoy');
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

function runInstallScript(root: string): Promise<string> {
  const script = path.join(root, 'scripts', 'install-envoy.sh');
  // Only reached with ENVOY_BIN unset, so the script takes its install path.
  return new Promise((resolve, reject) => {
    execFile('bash', [script], { cwd: root, timeout: 10 * 60_000 }, (err, stdout, stderr) => {
      if (err) {
        const lastErr = stderr.trim().split('\n').pop() ?? '';
        reject(new Error(`installing Envoy via ${script} failed: ${lastErr || err.message}`));
        return;
      }
      const printed = stdout.trim().split('\n').pop() ?? '';
      if (!printed || !isExecutableFile(printed)) {
        reject(new Error(`${script} did not print an executable Envoy path (got "${printed}")`));
        return;
      }
      resolve(printed);
    });
  });
}

/**
 * Finds the Envoy binary: $ENVOY_BIN, else the project-local install, else
 * (unless install === false) installs the pinned version first.
 */
export async function locateEnvoy(opts: { install?: boolean } = {}): Promise<string> {
  const fromEnv = process.env.ENVOY_BIN;
  if (fromEnv) {
    if (!isExecutableFile(fromEnv)) {
      throw new Error(`ENVOY_BIN=${fromEnv} is not an executable file; unset it or point it at an Envoy ${PINNED_ENVOY_VERSION} binary`);
    }
    return path.resolve(fromEnv);
  }
  const root = projectRoot();
  const local = findVenvEnvoy(root);
  if (local) return local;
  if (opts.install === false) {
    throw new Error(`Envoy not found in ${path.join(root, '.venv', 'envoy')}; run "npm run envoy:install" or set ENVOY_BIN`);
  }
  return runInstallScript(root);
}
