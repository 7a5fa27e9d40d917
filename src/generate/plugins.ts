// What ships under plugins/: every file rendered from templates/ with default settings, so the
// published Feature, Vagrant snippet and Compose fragment can never drift from what `init` writes.
import { renderComposeFragment } from "./compose-view.js";
import { renderFeature } from "./devcontainer.js";
import { resolveSettings } from "./settings.js";
import { renderProvisionScript, renderSnippet } from "./vagrant.js";

export interface PluginFile {
  /** Path under plugins/. */
  path: string;
  content: string;
  mode?: number;
}

export function renderPlugins(): PluginFile[] {
  const defaults = resolveSettings({});
  const { feature, test } = renderFeature();
  return [
    ...feature.map((f) => ({ path: `devcontainer-feature/src/mirror-kit/${f.name}`, content: f.content, ...(f.mode ? { mode: f.mode } : {}) })),
    { path: `devcontainer-feature/test/mirror-kit/${test.name}`, content: test.content, mode: 0o755 },
    { path: "vagrant/mirror-kit.rb", content: renderSnippet(defaults, "config", "") },
    { path: "vagrant/provision.sh", content: renderProvisionScript(defaults), mode: 0o755 },
    { path: "compose/compose.mirror-kit.yaml", content: renderComposeFragment(defaults) },
  ];
}
