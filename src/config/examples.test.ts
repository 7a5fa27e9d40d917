import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "./load.js";

const dir = join(import.meta.dirname, "..", "..", "examples", "config");

describe("example configs", async () => {
  const files = (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f));

  it("exist", () => {
    expect(files.length).toBeGreaterThanOrEqual(3);
  });

  it.each(files)("%s loads and validates", async (file) => {
    const { config } = await loadConfig({ file: join(dir, file) });
    expect(config.port).toBe(5000);
    expect(config.upstreams.get(config.defaultUpstream.name)).toBe(config.defaultUpstream);
  });
});
