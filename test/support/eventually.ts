// Polling for effects that follow a response (publication after fsync, background eviction):
// the caller's assertion judges the last value, so a timeout fails with the real state.

/** Read until `done(value)` holds or about `ms` passed; return the last value read. */
export async function eventually<T>(read: () => Promise<T>, done: (v: T) => boolean, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms;
  let v = await read();
  while (!done(v) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    v = await read();
  }
  return v;
}
