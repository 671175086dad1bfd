/** Drain epochs are persisted once per burst of changes, with every change in the file. */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as atomic from '../../../src/store/atomic-write';
import { FileDrainEpochs } from '../../../src/store/drain-epochs';
import { silentLogger } from '../../../src/util/logger';

describe('FileDrainEpochs', () => {
  afterEach(() => jest.restoreAllMocks());

  it('coalesces the sets of one rebuild into one write holding all of them, and writes later sets again', async () => {
    const file = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'exitgate-epochs-')), 'drain-epochs.json');
    const writesSpy = jest.spyOn(atomic, 'atomicWriteFile');
    const epochs = new FileDrainEpochs(file, silentLogger());
    for (let i = 0; i < 100; i++) epochs.set(`acme/a${i}`, { epoch: 1, keys: [] as never });
    await epochs.flush();
    expect(writesSpy).toHaveBeenCalledTimes(1);
    expect(Object.keys((JSON.parse(await fs.readFile(file, 'utf8')) as { agents: object }).agents)).toHaveLength(100);

    epochs.set('acme/a0', { epoch: 2, keys: [] as never });
    await epochs.flush();
    expect(writesSpy).toHaveBeenCalledTimes(2);
    const reread = new FileDrainEpochs(file, silentLogger());
    expect(reread.get('acme/a0')?.epoch).toBe(2);
    expect(reread.get('acme/a99')?.epoch).toBe(1);
  });
});
