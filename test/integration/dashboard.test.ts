// The dashboard in a real browser (Debian's Chromium through playwright-core): after real
// `docker pull`s through the mirror (a private dockerd wired with registry-mirrors), the open page
// shows the image and its figures move, with no reload. A screenshot is kept in test-artifacts/.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBrowser, type Browser } from "../support/browser.js";
import { dockerPull } from "../support/clients.js";
import { DockerEngine } from "../support/docker-engine.js";
import { pushImage } from "../support/fixtures/push.js";
import { uniqueImage } from "../support/fixtures/sets.js";
import { startTestMirror, type TestMirror } from "../support/mirror.js";
import { requireTools } from "../support/preflight.js";
import { RateLimitProxy } from "../support/ratelimit-proxy.js";
import { UpstreamRegistry } from "../support/registry.js";

const ARTIFACTS = new URL("../../test-artifacts/", import.meta.url).pathname;

describe("the dashboard in Chromium", () => {
  let hub: UpstreamRegistry;
  let limiter: RateLimitProxy;
  let mirror: TestMirror;
  let engine: DockerEngine;
  let browser: Browser;
  let page: Page;
  const loads: string[] = [];

  const text = (testId: string) => page.getByTestId(testId).innerText();
  /** Wait until a section's text differs from `before` (the assertion after it judges the outcome). */
  const changed = (testId: string, before: string) =>
    page
      .waitForFunction(([id, b]) => (document.querySelector(`[data-testid="${id}"]`) as HTMLElement | null)?.innerText !== b, [testId, before] as const, { timeout: 15_000 })
      .catch(() => undefined);

  beforeAll(async () => {
    requireTools(["dockerd", "docker", "docker-registry", "chromium"], { root: true });
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    await pushImage(hub, "library/mk-dash", await uniqueImage("docker"), "1");
    // Docker Hub's budget headers on manifest GETs, added in front of the real registry.
    limiter = await RateLimitProxy.start(hub.url, { limit: 100, windowSeconds: 21600 });
    mirror = await startTestMirror({ "docker.io": limiter.url }, { cache: { tagFreshness: "10m" } });
    engine = await DockerEngine.start({ registryMirrors: [mirror.url], insecureRegistries: [mirror.host] });
    browser = await startBrowser();
    page = await browser.context.newPage();
    // Every document load is recorded: the figures must change with exactly one (no reload).
    page.on("load", () => loads.push(page.url()));
  });

  afterAll(async () => {
    await browser?.close();
    await engine?.stop();
    await mirror?.close();
    await limiter?.close();
    await hub?.close();
  });

  it("loads offline from the mirror alone and goes live", async () => {
    const requested: string[] = [];
    page.on("request", (r) => requested.push(r.url()));
    await page.goto(`${mirror.url}/`);
    await page.getByTestId("live").filter({ hasText: "live" }).waitFor({ timeout: 15_000 });
    expect(await text("recent-pulls")).toContain("none yet");
    expect(await text("upstreams")).toContain("docker.io");
    // Nothing but the mirror itself: no CDN, no font service.
    expect(requested.filter((u) => !u.startsWith(mirror.url))).toEqual([]);
  });

  it("shows a real docker pull, and the figures change without a reload", async () => {
    const cacheBefore = await text("cache");
    await dockerPull(engine, "mk-dash:1");
    await page.getByTestId("recent-pulls").filter({ hasText: "docker.io/library/mk-dash:1" }).waitFor({ timeout: 15_000 });
    const pulls = await text("recent-pulls");
    expect(pulls).toMatch(/docker\.io\/library\/mk-dash:1\s+127\.0\.0\.1\s+miss/);
    await changed("cache", cacheBefore);
    expect(await text("cache")).not.toBe(cacheBefore);
    expect(await text("largest")).toContain("docker.io/library/mk-dash:1");
    expect(await text("ratelimit-docker.io")).toContain(`${limiter.remaining} / 100`);

    // A second pull of the same image (after removing it from the engine) is served from the cache.
    const savedBefore = await text("bytes-saved");
    await engine.docker(["rmi", "mk-dash:1"]);
    await dockerPull(engine, "mk-dash:1");
    await changed("bytes-saved", savedBefore);
    expect(await text("bytes-saved")).not.toBe(savedBefore);
    expect(await text("most-used")).toMatch(/docker\.io\/library\/mk-dash:1\s+2 pulls/);
    expect(loads).toEqual([`${mirror.url}/`]);

    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
  });
});
