import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { locateEnvoy, PINNED_ENVOY_VERSION, projectRoot } from '../../../src/envoy/locate';

describe('locateEnvoy', () => {
  const savedEnvoyBin = process.env.ENVOY_BIN;
  let tmp: string;

  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'exitgate-locate-'));
  });

  afterEach(() => {
    if (savedEnvoyBin === undefined) delete process.env.ENVOY_BIN;
    else process.env.ENVOY_BIN = savedEnvoyBin;
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('pins Envoy 1.40.0', () => {
    expect(PINNED_ENVOY_VERSION).toBe('1.40.0');
  });

  it('finds the exitgate project root', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(projectRoot(), 'package.json'), 'utf8')) as { name: string };
    expect(pkg.name).toBe('exitgate');
  });

  it('returns ENVOY_BIN when it is an executable file', async () => {
    const fake = path.join(tmp, 'envoy');
    fs.writeFileSync(fake, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    process.env.ENVOY_BIN = fake;
    await expect(locateEnvoy({ install: false })).resolves.toBe(fake);
  });

  it('gives a clear error for a missing ENVOY_BIN path', async () => {
    process.env.ENVOY_BIN = path.join(tmp, 'does-not-exist');
    await expect(locateEnvoy()).rejects.toThrow(/ENVOY_BIN=.*does-not-exist is not an executable file/);
  });

  it('rejects an ENVOY_BIN that is not executable', async () => {
    const plain = path.join(tmp, 'envoy');
    fs.writeFileSync(plain, 'not a program', { mode: 0o644 });
    process.env.ENVOY_BIN = plain;
    await expect(locateEnvoy()).rejects.toThrow(/not an executable file/);
  });
});
