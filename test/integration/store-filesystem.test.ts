// The filesystem store passes the shared store suite (test/support/store-suite.ts): two replicas
// are two FsStore instances on one folder, each with its own ingest area.
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FsStore } from "../../src/store/fs-store.js";
import { storeSuite } from "../support/store-suite.js";

storeSuite(
  "filesystem",
  async () => {
    const root = await mkdtemp(join(tmpdir(), "mk-store-fs-"));
    return {
      open: (replica) => FsStore.open(root, { replica }),
      leftovers: async () => readdir(join(root, "ingest")),
      // An open file stays readable after eviction unlinks it.
      openBlobs: "readable",
      cleanup: () => rm(root, { recursive: true, force: true }),
    };
  },
  { evictable: true },
);
