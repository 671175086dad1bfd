/**
 * Parsed policy files by (display name, text). YAML parsing and validation are the cost of a
 * reload; a change usually touches one file, so every other file's `ParsedFile` is reused: the same
 * objects, which also lets later stages tell "unchanged" by identity (the store's change check, the
 * snapshot cache's per-agent skip).
 *
 * Shared objects must never change, so what the cache hands out is frozen (deeply): a consumer that
 * tried to mutate a policy would throw instead of silently changing the policy of every later set.
 */
import { parsePolicyText, type ParsedFile } from './parse';

interface CacheEntry {
  text: string;
  parsed: ParsedFile;
  /** Missing from the last listing (retainOnly): dropped if missing from the next one too. */
  absent?: boolean;
}

export class ParseCache {
  private readonly entries = new Map<string, CacheEntry>();
  /** Files whose entries retainOnly keeps (see hold), with how many holders. */
  private readonly held = new Map<string, number>();
  /** Parses and reuses since construction (for tests and logs). */
  readonly stats = { parsed: 0, reused: 0 };

  /**
   * The parse of `text` as file `file`: the previous `ParsedFile` (the same, frozen, objects) if
   * that file had exactly this text last time, else a fresh parse that replaces it.
   */
  parse(file: string, text: string): ParsedFile {
    const hit = this.entries.get(file);
    if (hit && hit.text === text) {
      this.stats.reused += 1;
      delete hit.absent;
      return hit.parsed;
    }
    this.stats.parsed += 1;
    const parsed = deepFreeze(parsePolicyText(file, text));
    this.entries.set(file, { text, parsed });
    return parsed;
  }

  /**
   * Drops the entries of files missing from two listings in a row (`present`: the display names
   * of one directory listing), so memory follows the directory. Two, not one: an admin write parses
   * the file it is about to write (renderChecked), and a reload started by the watcher in between
   * lists the directory without it; that parse must survive until the write is applied.
   */
  retainOnly(present: Iterable<string>): void {
    const keep = new Set(present);
    for (const [file, entry] of this.entries) {
      if (keep.has(file) || this.held.has(file)) delete entry.absent;
      else if (entry.absent) this.entries.delete(file);
      else entry.absent = true;
    }
  }

  /**
   * Keeps the entry of `file` whatever the listings in between say, until the returned function is
   * called: an admin write holds the file it parses and then writes, so that reloads the watcher
   * starts while the write is under way (they list the directory without the file) cannot drop
   * that parse before the write is applied.
   */
  hold(file: string): () => void {
    this.held.set(file, (this.held.get(file) ?? 0) + 1);
    return () => {
      const n = (this.held.get(file) ?? 1) - 1;
      if (n > 0) this.held.set(file, n);
      else this.held.delete(file);
    };
  }

  get size(): number {
    return this.entries.size;
  }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
