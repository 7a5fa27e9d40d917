// `npm run regenerate` (after the build it runs first): rewrites every generated file checked into the
// repository from templates/ — plugins/ here, then the generator's golden files through their suites.
//   --check            change nothing; exit 1 naming each file that is not what the templates render
//   --plugins-only     skip the golden files (test/generate/golden*, rewritten by UPDATE_GOLDEN=1 vitest)
//   --plugins-dir DIR  another folder than plugins/ (the regenerate test uses a copy)
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
const check = args.includes("--check");
const at = args.indexOf("--plugins-dir");
const repo = fileURLToPath(new URL("..", import.meta.url));
const pluginsDir = at >= 0 ? args[at + 1] : `${repo}plugins`;
if (!pluginsDir) {
  process.stderr.write("regenerate: --plugins-dir needs a folder\n");
  process.exit(2);
}

const { syncPlugins } = await import("../dist/generate/plugins.js");
const { written, removed } = syncPlugins(pluginsDir, check);
for (const f of written) process.stdout.write(`${check ? "differs" : "wrote"}: plugins/${f}\n`);
for (const f of removed) process.stdout.write(`${check ? "left over" : "removed"}: plugins/${f}\n`);
let failed = check && written.length + removed.length > 0;

if (!args.includes("--plugins-only")) {
  // The golden files are what the suites compare with: they rewrite them under UPDATE_GOLDEN=1, and
  // without it (--check) they fail on any difference.
  const suites = ["test/generate/examples.test.ts", "test/generate/wire.test.ts"];
  const r = spawnSync(process.execPath, [`${repo}node_modules/vitest/vitest.mjs`, "run", ...suites], {
    cwd: repo,
    stdio: "inherit",
    env: { ...process.env, ...(check ? {} : { UPDATE_GOLDEN: "1" }) },
  });
  if (r.status !== 0) failed = true;
}
if (check && !failed) process.stdout.write("regenerate --check: every generated file is current\n");
process.exit(failed ? 1 : 0);
