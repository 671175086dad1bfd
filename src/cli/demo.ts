/** `exitgate demo` — placeholder replaced by the demo implementation. */
export async function demo(_flags: { once?: boolean }): Promise<number> {
  throw new Error('demo not implemented');
}
