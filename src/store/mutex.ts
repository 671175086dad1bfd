/**
 * A FIFO async mutex: admin API writes run one at a time, so a precondition (`If-Match`) is
 * checked and the write made with nothing in between; of N concurrent writers holding the same
 * revision, exactly one wins.
 */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  /** Runs `fn` once every earlier holder has finished (whether it resolved or threw). */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}
