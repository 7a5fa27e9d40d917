// Bundles the dashboard (src/ui) into dist/ui at build time: one ES module with Preact inside,
// plus the page and its stylesheet. The mirror serves these files; nothing is fetched from a CDN.
import { copyFile, mkdir } from "node:fs/promises";
import { build } from "esbuild";

const out = "dist/ui";
await mkdir(out, { recursive: true });
await build({
  entryPoints: ["src/ui/app.tsx"],
  outfile: `${out}/app.js`,
  bundle: true,
  minify: true,
  sourcemap: true,
  format: "esm",
  target: "es2020",
  jsx: "automatic",
  jsxImportSource: "preact",
  logLevel: "warning",
});
await copyFile("src/ui/index.html", `${out}/index.html`);
await copyFile("src/ui/style.css", `${out}/style.css`);
