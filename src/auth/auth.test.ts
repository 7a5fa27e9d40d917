import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import bcrypt from "bcryptjs";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../observe/log.js";
import { Authenticator, parseBasic } from "./guard.js";
import { parseHtpasswd } from "./htpasswd.js";
import { FailureSlowdown } from "./slowdown.js";

const silent = createLogger("silent");
const hash = (pw: string, cost = 4) => bcrypt.hashSync(pw, cost);

function fakeRequest(authorization?: string, address = "192.0.2.1") {
  return { headers: authorization ? { authorization } : {}, socket: { remoteAddress: address } } as never;
}
const basic = (user: string, pw: string) => `Basic ${Buffer.from(`${user}:${pw}`).toString("base64")}`;

describe("htpasswd files are read as distribution reads them", () => {
  it("skips blank and # lines, trims, and lets the last entry of a user win", async () => {
    const a = hash("one");
    const b = hash("two");
    const t = await parseHtpasswd(`# team\n\n  alice:${a}  \nbob:${a}\nbob:${b}\n`, "f");
    expect([...t.users.keys()]).toEqual(["alice", "bob"]);
    expect(t.users.get("bob")).toBe(b);
  });

  it("refuses a line without a colon, naming the line", async () => {
    await expect(parseHtpasswd(`alice:${hash("x")}\nnonsense\n`, "f")).rejects.toThrow(/line 2 is not "user:hash"/);
  });

  it("refuses non-bcrypt entries (MD5, SHA, plain), naming the user", async () => {
    for (const entry of ["carol:$apr1$abc$def", "carol:{SHA}abc=", "carol:secret"]) {
      await expect(parseHtpasswd(entry, "f")).rejects.toThrow(/user "carol".*not a bcrypt hash.*htpasswd -B/);
    }
  });

  it("makes the decoy as costly as the dearest entry, so unknown users take as long", async () => {
    const t = await parseHtpasswd(`a:${hash("x", 4)}\nb:${hash("y", 9)}\n`, "f");
    expect(bcrypt.getRounds(t.decoy)).toBe(9);
  });
});

describe("Basic credentials", () => {
  it("splits user and password at the first colon", () => {
    expect(parseBasic(basic("alice", "pa:ss"))).toEqual({ user: "alice", password: "pa:ss" });
    expect(parseBasic("basic " + Buffer.from("a:b").toString("base64"))).toEqual({ user: "a", password: "b" });
  });
  it.each([[undefined], ["Bearer abc"], ["Basic !!!"], [`Basic ${Buffer.from("nocolon").toString("base64")}`], [`Basic ${Buffer.from(":pw").toString("base64")}`]])(
    "rejects %s",
    (header) => expect(parseBasic(header)).toBeUndefined(),
  );
});

describe("repeated failures from one address are slowed down, in bounded memory", () => {
  it("allows a few failures, then doubles the wait up to the ceiling", () => {
    const s = new FailureSlowdown({ freeFailures: 2, baseDelayMs: 100, maxDelayMs: 350 });
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      delays.push(s.delayFor("a"));
      s.failed("a");
    }
    expect(delays).toEqual([0, 0, 100, 200, 350, 350]);
    expect(s.delayFor("b")).toBe(0);
    s.succeeded("a");
    expect(s.delayFor("a")).toBe(0);
  });

  it("forgets failures after the window", () => {
    let now = 0;
    const s = new FailureSlowdown({ freeFailures: 0, windowMs: 1_000, now: () => now });
    s.failed("a");
    expect(s.delayFor("a")).toBeGreaterThan(0);
    now = 2_000;
    expect(s.delayFor("a")).toBe(0);
  });

  it("remembers at most maxAddresses, dropping the oldest", () => {
    const s = new FailureSlowdown({ maxAddresses: 100, freeFailures: 0 });
    for (let i = 0; i < 1_000; i++) s.failed(`10.0.${i >> 8}.${i & 255}`);
    expect(s.size).toBe(100);
    expect(s.delayFor("10.0.0.0")).toBe(0);
    expect(s.delayFor("10.0.3.231")).toBeGreaterThan(0);
  });
});

describe("the authenticator", () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function withFile(content: string, anonymousPaths = ["/healthz"]) {
    dir = await mkdtemp(join(tmpdir(), "mk-auth-"));
    const path = join(dir, "htpasswd");
    await writeFile(path, content);
    const auth = new Authenticator({ htpasswd: { realm: 'my "team"', path }, anonymousPaths, anonymousPull: false }, silent);
    await auth.start();
    return auth;
  }

  it("is off without an htpasswd file: every request is anonymous", async () => {
    const auth = new Authenticator({ anonymousPaths: ["/healthz"], anonymousPull: false }, silent);
    await auth.start();
    expect(auth.enabled).toBe(false);
    await expect(auth.check(fakeRequest(), "/v2/")).resolves.toBeNull();
  });

  it("accepts the right password, refuses a wrong one, an unknown user and none", async () => {
    const auth = await withFile(`alice:${hash("s3cret")}\n`);
    await expect(auth.check(fakeRequest(basic("alice", "s3cret")), "/v2/")).resolves.toEqual({ user: "alice" });
    await expect(auth.check(fakeRequest(basic("alice", "wrong")), "/v2/")).rejects.toMatchObject({ code: "UNAUTHORIZED" });
    await expect(auth.check(fakeRequest(basic("mallory", "s3cret")), "/v2/")).rejects.toMatchObject({ code: "UNAUTHORIZED" });
    await expect(auth.check(fakeRequest(), "/metrics")).rejects.toMatchObject({ code: "UNAUTHORIZED" });
  });

  it("leaves only the configured paths open", async () => {
    const auth = await withFile(`alice:${hash("s3cret")}\n`);
    await expect(auth.check(fakeRequest(), "/healthz")).resolves.toBeNull();
    const closed = await withFile(`alice:${hash("s3cret")}\n`, []);
    await expect(closed.check(fakeRequest(), "/healthz")).rejects.toMatchObject({ code: "UNAUTHORIZED" });
  });

  it("quotes the realm safely in the challenge", async () => {
    const auth = await withFile(`alice:${hash("s3cret")}\n`);
    expect(auth.challenge).toBe('Basic realm="my team"');
  });

  it("refuses to start with a missing or invalid file, naming it", async () => {
    const missing = new Authenticator({ htpasswd: { realm: "r", path: "/nonexistent/htpasswd" }, anonymousPaths: [], anonymousPull: false }, silent);
    await expect(missing.start()).rejects.toThrow(/auth.htpasswd.path: cannot read \/nonexistent\/htpasswd: ENOENT/);
    await expect(withFile("bob:plain\n")).rejects.toThrow(/not a bcrypt hash/);
  });
});
