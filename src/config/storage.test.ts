import { mkdtemp, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "./load.js";

async function file(content: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "mk-config-storage-"));
  const path = join(dir, "config.yml");
  await writeFile(path, content);
  return path;
}

describe("storage configuration", () => {
  it.each([
    ["a folder (the form every earlier config uses)", "storage: /var/cache/mk\n", "/var/cache/mk"],
    ["the filesystem driver with a root", "storage:\n  driver: filesystem\n  root: /srv/mk\n", "/srv/mk"],
    ["the filesystem driver with its default root", "storage:\n  driver: filesystem\n", "./mirror-kit-data"],
    ["nothing (the default folder)", "listen: 127.0.0.1:5000\n", "./mirror-kit-data"],
  ])("opens %s as the filesystem store", async (_case, yaml, root) => {
    const { config } = await loadConfig({ file: await file(yaml) });
    expect(config.store).toEqual({ driver: "filesystem", root });
    expect(config.storage).toBe(root);
  });

  it.each([
    ["an unknown driver", "storage:\n  driver: floppy\n", "storage.driver"],
    ["a misspelt filesystem field", "storage:\n  driver: filesystem\n  rootdir: /x\n", "storage"],
    ["an empty folder", 'storage: ""\n', "storage"],
    ["a replica name with a slash", "replica: a/b\n", "replica"],
    ["a replica name too long", `replica: ${"r".repeat(65)}\n`, "replica"],
  ])("refuses %s, naming the field", async (_case, yaml, field) => {
    await expect(loadConfig({ file: await file(yaml) })).rejects.toThrow(new RegExp(`\\n  ${field.replace(".", "\\.")}[.:]`));
  });

  it("names the replica after the host unless told, from the file or MIRROR_KIT_REPLICA", async () => {
    expect((await loadConfig()).config.replica).toBe(hostname());
    expect((await loadConfig({ file: await file("replica: mirror-1\n") })).config.replica).toBe("mirror-1");
    expect((await loadConfig({ file: await file("replica: mirror-1\n"), env: { MIRROR_KIT_REPLICA: "mirror-2" } })).config.replica).toBe("mirror-2");
  });

  it("lets MIRROR_KIT_STORAGE replace a storage object from the file", async () => {
    const { config } = await loadConfig({ file: await file("storage:\n  driver: filesystem\n  root: /srv/mk\n"), env: { MIRROR_KIT_STORAGE: "/from-env" } });
    expect(config.store).toEqual({ driver: "filesystem", root: "/from-env" });
  });
});
