import { describe, expect, it } from "vitest";
import { loadConfig } from "./load.js";

describe("parent (chaining) configuration", () => {
  it("takes the parent from the config, the environment (MIRROR_KIT_PARENT) or a flag; fallback defaults on", async () => {
    const fromEnv = (await loadConfig({ env: { MIRROR_KIT_PARENT: "http://team-mirror.lan:5000" } })).config;
    expect(fromEnv.parent?.url.href).toBe("http://team-mirror.lan:5000/");
    expect(fromEnv.parent?.fallback).toBe(true);
    const fromFlags = (await loadConfig({ flags: { parent: { url: "https://team.example/mirror", username: "u", password: "p", fallback: false } } })).config;
    expect(fromFlags.parent).toMatchObject({ username: "u", password: "p", fallback: false });
    expect(fromFlags.parent?.url.href).toBe("https://team.example/mirror/");
    expect((await loadConfig()).config.parent).toBeUndefined();
  });

  const refused: [string, Record<string, unknown>, RegExp][] = [
    ["credentials in the URL", { url: "http://u:secret@team:5000" }, /parent\.url/],
    ["a URL that is not http(s)", { url: "ftp://team" }, /parent\.url/],
    ["a username without a password", { url: "http://team:5000", username: "u" }, /parent.*username and password go together/s],
    ["an unknown key", { url: "http://team:5000", urls: ["x"] }, /parent/],
  ];
  for (const [what, parent, message] of refused) {
    it(`refuses ${what}, naming the field and never echoing a password`, async () => {
      const err = await loadConfig({ flags: { parent } as never }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain("secret");
    });
  }
});
