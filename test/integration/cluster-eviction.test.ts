// The size cap across three replica processes on one storage folder with one Debian redis-server
// (test/support/cluster-eviction.ts): one evictor at a time, shared usage, nothing kept or read lost.
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { clusterEvictionSuite } from "../support/cluster-eviction.js";

clusterEvictionSuite("a shared folder", async () => {
  let root = "";
  return {
    // An open file stays readable after eviction unlinks it.
    openBlobs: "readable",
    storage: (_replica, dir) => (root = join(dir, "store")),
    async published() {
      const out = new Map<string, number>();
      const blobs = join(root, "blobs", "sha256");
      for (const prefix of await readdir(blobs).catch(() => [] as string[])) {
        for (const hex of await readdir(join(blobs, prefix)).catch(() => [] as string[])) {
          const s = await stat(join(blobs, prefix, hex)).catch(() => undefined);
          if (s) out.set(`sha256:${hex}`, s.size);
        }
      }
      return out;
    },
    close: async () => undefined,
  };
});
