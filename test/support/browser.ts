// A real browser for the dashboard suites: Debian's Chromium driven by playwright-core, with a
// fresh profile and the flags that let it run as root, offline, without background traffic.
import { chromium, type BrowserContext } from "playwright-core";
import { requireTools } from "./preflight.js";
import { makeTempDir, removeTempDir } from "./scratch.js";

export const CHROMIUM = "/usr/bin/chromium";
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function startBrowser(): Promise<Browser> {
  requireTools(["chromium"]);
  const profile = await makeTempDir("chromium");
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1280, height: 1100 } });
  } catch (err) {
    await removeTempDir(profile);
    throw err;
  }
  return {
    context,
    async close() {
      await context.close();
      await removeTempDir(profile);
    },
  };
}
