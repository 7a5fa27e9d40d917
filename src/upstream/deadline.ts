// Total deadlines for upstream exchanges. undici's timers are idle timers that every byte resets,
// so an upstream sending one byte a second would hold a client forever; a deadline ends it.
import { UpstreamError } from "./errors.js";

/**
 * Run one upstream exchange (request, auth round trips and body read) under a total deadline.
 * fn gets the signal to pass to every request it makes; on expiry the requests are aborted and the
 * caller gets an UpstreamError of failure "timeout", whatever error the aborted work threw.
 */
export async function withDeadline<T>(upstream: string, what: string, ms: number, fn: (signal: AbortSignal) => Promise<T>, parent?: AbortSignal): Promise<T> {
  const expired = new UpstreamError(upstream, "timeout", `${what}: no complete answer within ${formatMs(ms)}`);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(expired), ms);
  const onParentAbort = () => controller.abort(parent?.reason);
  if (parent?.aborted) onParentAbort();
  else parent?.addEventListener("abort", onParentAbort, { once: true });
  try {
    return await fn(controller.signal);
  } catch (err) {
    if (controller.signal.reason === expired) throw expired;
    throw err;
  } finally {
    clearTimeout(timer);
    parent?.removeEventListener("abort", onParentAbort);
  }
}

/**
 * Wait for a promise shared with other callers (a single flight), but no longer than this caller's
 * signal allows: the flight keeps going for the others, this caller is released with the reason.
 */
export function raceSignal<T>(shared: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return shared;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener("abort", onAbort, { once: true });
    shared.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err as Error);
      },
    );
  });
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms} ms`;
}
