// View-model and rendering of the mirror-kit Compose fragment (templates/compose/): every value the
// template places is computed here, including YAML-safe quoting of the healthcheck command.
import { render, seal, packageVersion, STAMP_PLACEHOLDER } from "./render.js";
import { CONTAINER_PORT, CONTAINER_STORAGE, type Settings } from "./settings.js";

export const SERVICE_NAME = "mirror-kit";

export interface ComposeView {
  stamp: string;
  version: string;
  image: string;
  portMapping: string;
  volumeMount: string;
  volumeName: string | null;
  environment: { name: string; valueYaml: string }[] | null;
  healthcheckTestYaml: string;
}

/** The image's own `mirror-kit healthcheck`: it finds the port and scheme however serve was configured. */
export const HEALTHCHECK_TEST = ["CMD", "node", "/app/dist/cli/healthcheck-main.js"];

export function composeView(s: Settings): ComposeView {
  const custom = s.upstreams.filter((u) => u.custom);
  const vars: { name: string; valueYaml: string }[] = [];
  if (custom.length) vars.push({ name: "MIRROR_KIT_UPSTREAMS", valueYaml: JSON.stringify(custom.map((u) => `${u.name}=${u.url}`).join(",")) });
  // The server sees only its mount point; with this its storage errors name the folder given to init.
  if (s.storage.kind === "bind") vars.push({ name: "MIRROR_KIT_STORAGE_HOST_PATH", valueYaml: JSON.stringify(s.storage.path) });
  const env = vars.length ? vars : null;
  return {
    stamp: STAMP_PLACEHOLDER,
    version: packageVersion(),
    image: s.image,
    portMapping: `${s.port}:${CONTAINER_PORT}`,
    volumeMount: `${s.storage.kind === "volume" ? s.storage.name : s.storage.path}:${CONTAINER_STORAGE}`,
    volumeName: s.storage.kind === "volume" ? s.storage.name : null,
    environment: env,
    // JSON is valid YAML flow syntax and quotes the JavaScript safely.
    healthcheckTestYaml: JSON.stringify(HEALTHCHECK_TEST),
  };
}

/** The standalone fragment (plugins/compose/compose.mirror-kit.yaml and `init` with no compose file). */
export function renderComposeFragment(s: Settings): string {
  return seal(render("compose/compose.mirror-kit.yaml", composeView(s)));
}
