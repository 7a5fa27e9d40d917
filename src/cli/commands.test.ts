import { describe, expect, it } from "vitest";
import { loadCommands } from "./commands.js";

describe("loadCommands", () => {
  it("loads every command for help, each once, serve first", async () => {
    const names = (await loadCommands(["--help"])).map((c) => String(c.command).split(" ")[0]);
    expect(names[0]).toBe("serve");
    expect(names).toEqual(expect.arrayContaining(["init", "wire", "up", "down", "image", "prefetch", "export", "import", "rm", "prune", "refresh", "cert", "status", "ls", "doctor", "healthcheck"]));
    expect(new Set(names).size).toBe(names.length);
  });

  it("loads only the command named first, and that command is the one its table entry names", async () => {
    for (const name of (await loadCommands([])).map((c) => String(c.command).split(" ")[0] as string)) {
      const only = await loadCommands([name, "--x"]);
      expect(only.map((c) => String(c.command).split(" ")[0])).toEqual([name]);
    }
  });

  it("loads them all for a word that is no command, so yargs can say so", async () => {
    expect((await loadCommands(["serv"])).length).toBeGreaterThan(10);
  });
});
