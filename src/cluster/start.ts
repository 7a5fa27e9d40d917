// Builds what a replica coordinates with from config: nothing without `redis`, else the Redis
// coordinator and the cluster-wide single flight for blob downloads.
import type { MirrorConfig } from "../config/resolve.js";
import type { Logger } from "../observe/log.js";
import type { Coordinator } from "./coordinator.js";
import { ClusterFlight } from "./flight.js";

export async function startCoordinator(config: MirrorConfig, log: Logger): Promise<{ coordinator?: Coordinator; flight?: ClusterFlight }> {
  if (!config.redis) return {};
  const r = config.redis;
  // ioredis costs ~6 MiB of resident memory: loaded only by a replica configured with Redis.
  const { RedisCoordinator } = await import("./redis.js");
  const coordinator = await RedisCoordinator.connect({
    host: r.host,
    port: r.port,
    ...(r.password !== undefined ? { password: r.password } : {}),
    db: r.db,
    tls: r.tls,
    replica: config.replica,
    keyPrefix: r.keyPrefix,
    leaseMs: r.leaseMs,
    timeoutMs: r.timeoutMs,
    log: log.child({ component: "redis" }),
  });
  // A holder that died announces nothing: waiters look again a few times per lease.
  // A follower waits for the holder's lease to lapse and another replica to take over before it gives up.
  const flight = new ClusterFlight({ coordinator, log, pollMs: Math.max(100, Math.min(1_000, Math.floor(r.leaseMs / 4))), stallMs: Math.max(60_000, 4 * r.leaseMs) });
  return { coordinator, flight };
}
