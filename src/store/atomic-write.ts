/**
 * Crash-safe file replacement: write a temporary file in the target's directory, fsync it,
 * rename it over the target, fsync the directory. rename(2) within one file system is atomic,
 * so a reader (the store's reload) sees the old content or the new, never a mix, and a crash at
 * any point leaves the old file or the new one, plus at most a stray temporary file.
 *
 * Temporary files are dot-files ending in `.exitgate-tmp`: policy loading skips dot-files and
 * reads only .yaml/.yml/.json, so a reload never parses one; `removeStaleTempFiles` clears the
 * ones a crash left behind.
 *
 * Node built-ins only (a crash test runs this file in a child process it kills).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';

export const TEMP_SUFFIX = '.exitgate-tmp';
const TEMP_FILE = /^\..+\.exitgate-tmp$/;

/** Makes a directory entry change (create, rename, unlink) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Atomically replaces (or creates) `target` with `data`; on error the target is untouched. */
export async function atomicWriteFile(target: string, data: string | Uint8Array): Promise<void> {
  const dir = path.dirname(target);
  const tmp = path.join(dir, `.${path.basename(target)}.${process.pid}.${crypto.randomBytes(6).toString('hex')}${TEMP_SUFFIX}`);
  // Keep the mode of a file being replaced (an operator may have set it); 0644 for a new one.
  const mode = await fs.stat(target).then(
    (st) => st.mode & 0o777,
    () => 0o644,
  );
  let fh: fs.FileHandle | undefined;
  try {
    fh = await fs.open(tmp, 'wx', mode);
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fs.rename(tmp, target);
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await fs.unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dir);
}

/** Removes a file durably; false when it did not exist. */
export async function durableUnlink(file: string): Promise<boolean> {
  try {
    await fs.unlink(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  await fsyncDir(path.dirname(file));
  return true;
}

/** Creates `dir` (below an existing `root`) and makes each new entry durable in its parent. */
export async function ensureDir(root: string, dir: string): Promise<void> {
  const rel = path.relative(root, dir);
  if (rel === '') return;
  if (rel.startsWith('..') || path.isAbsolute(rel)) throw new Error(`internal: ${dir} is outside ${root}`);
  let parent = root;
  for (const part of rel.split(path.sep)) {
    const d = path.join(parent, part);
    try {
      await fs.mkdir(d);
      await fsyncDir(parent);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    parent = d;
  }
}

/** Deletes temporary files a crashed writer left under `root`; returns their paths. */
export async function removeStaleTempFiles(root: string): Promise<string[]> {
  const removed: string[] = [];
  const walk = async (d: string): Promise<void> => {
    const entries = await fs.readdir(d, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const full = path.join(d, e.name);
      if (e.isDirectory() && !e.name.startsWith('.')) await walk(full);
      else if (e.isFile() && TEMP_FILE.test(e.name)) {
        await fs.unlink(full).then(
          () => removed.push(full),
          () => undefined,
        );
      }
    }
  };
  await walk(root);
  return removed;
}
