// View-model and rendering of the mirror-kit Compose fragment (templates/compose/): every value the
// template places is computed here, including YAML-safe quoting of the healthcheck command.
import { isAbsolute, relative } from "node:path";
import { render, seal, packageVersion, STAMP_PLACEHOLDER } from "./render.js";
import { BUILD_CONTEXT } from "./compose-build.js";
import { CONTAINER_PORT, CONTAINER_STORAGE, type Settings } from "./settings.js";
import { requireCoverage, requireServerPair } from "./tls-material.js";

export const SERVICE_NAME = "mirror-kit";
/** The prefetch step as a Compose service (init --prefetch); prefetch never pulls either of the two. */
export const PREFETCH_SERVICE = "mirror-kit-prefetch";
/** Where the prefetch service sees the project (read-only) and the CA of an https mirror. */
const CONTAINER_PROJECT = "/project";
const CONTAINER_CA = "/etc/mirror-kit/ca.crt";
/** Where the service finds the certificate and key `init --ca` found beside the CA (mounted read-only). */
export const CONTAINER_TLS_DIR = "/etc/mirror-kit/tls";

/**
 * A host file as a Compose bind-mount source: relative to the Compose file's folder (Compose resolves it
 * from there, so the project can move), "./" first so it is never read as a volume name. Without a
 * folder (the standalone fragment) it stays as given.
 */
export function composeSource(file: string, composeDir?: string): string {
  if (!composeDir) return file;
  const rel = relative(composeDir, file);
  if (rel === "") return ".";
  return isAbsolute(rel) || rel.startsWith("../") ? rel : `./${rel}`;
}

export interface ComposeView {
  stamp: string;
  version: string;
  image: string;
  /** init --build: Compose builds the image from the context init copied into the project. */
  build: { contextYaml: string; baseImageYaml: string } | null;
  portMapping: string;
  volumeMounts: string[];
  volumeName: string | null;
  environment: { name: string; valueYaml: string }[] | null;
  healthcheckTestYaml: string;
  prefetch: { commandYaml: string; mounts: string[] } | null;
}

/**
 * The prefetch service: `mirror-kit prefetch` in the mirror's own image against the mirror over the
 * Compose network, on the project folder (`project`: the folder init ran in).
 */
function prefetchView(s: Settings, project: string, composeDir?: string): ComposeView["prefetch"] {
  const url = `${s.ca ? "https" : "http"}://${SERVICE_NAME}:${CONTAINER_PORT}`;
  const mounts = [`${composeSource(project, composeDir)}:${CONTAINER_PROJECT}:ro`];
  const command = ["prefetch", "--mirror", url];
  if (s.ca) {
    requireCoverage(s.ca, SERVICE_NAME, `the prefetch service (${PREFETCH_SERVICE}) would`);
    mounts.push(`${composeSource(s.ca.file, composeDir)}:${CONTAINER_CA}:ro`);
    command.push("--ca", CONTAINER_CA);
  }
  return { commandYaml: JSON.stringify([...command, CONTAINER_PROJECT]), mounts };
}

/** The image's own `mirror-kit healthcheck`: it finds the port and scheme however serve was configured. */
export const HEALTHCHECK_TEST = ["CMD", "node", "/app/dist/cli/healthcheck-main.js"];

/** prefetchProject: with init --prefetch, the project folder the prefetch service warms the mirror with. */
export function composeView(s: Settings, composeDir?: string, prefetchProject?: string): ComposeView {
  const custom = s.upstreams.filter((u) => u.custom);
  const vars: { name: string; valueYaml: string }[] = [];
  const mounts = [`${s.storage.kind === "volume" ? s.storage.name : s.storage.path}:${CONTAINER_STORAGE}`];
  if (s.ca) {
    // The clients are told the mirror is https (--ca), so the service must serve it: with the pair
    // beside the CA. Each file alone, so the CA's own key in that folder never enters the container.
    const pair = requireServerPair(s.ca);
    mounts.push(`${composeSource(pair.certFile, composeDir)}:${CONTAINER_TLS_DIR}/server.crt:ro`, `${composeSource(pair.keyFile, composeDir)}:${CONTAINER_TLS_DIR}/server.key:ro`);
    vars.push({ name: "MIRROR_KIT_TLS_CERT", valueYaml: JSON.stringify(`${CONTAINER_TLS_DIR}/server.crt`) }, { name: "MIRROR_KIT_TLS_KEY", valueYaml: JSON.stringify(`${CONTAINER_TLS_DIR}/server.key`) });
  }
  if (custom.length) vars.push({ name: "MIRROR_KIT_UPSTREAMS", valueYaml: JSON.stringify(custom.map((u) => `${u.name}=${u.url}`).join(",")) });
  // The server sees only its mount point; with this its storage errors name the folder given to init.
  if (s.storage.kind === "bind") vars.push({ name: "MIRROR_KIT_STORAGE_HOST_PATH", valueYaml: JSON.stringify(s.storage.path) });
  const env = vars.length ? vars : null;
  return {
    stamp: STAMP_PLACEHOLDER,
    version: packageVersion(),
    image: s.image,
    build: s.build ? { contextYaml: JSON.stringify(`./${BUILD_CONTEXT}`), baseImageYaml: JSON.stringify(s.build.baseImage) } : null,
    portMapping: `${s.port}:${CONTAINER_PORT}`,
    volumeMounts: mounts,
    volumeName: s.storage.kind === "volume" ? s.storage.name : null,
    environment: env,
    // JSON is valid YAML flow syntax and quotes the JavaScript safely.
    healthcheckTestYaml: JSON.stringify(HEALTHCHECK_TEST),
    prefetch: prefetchProject === undefined ? null : prefetchView(s, prefetchProject, composeDir),
  };
}

/** The standalone fragment (plugins/compose/compose.mirror-kit.yaml and `init` with no compose file). */
export function renderComposeFragment(s: Settings, composeDir?: string, prefetchProject?: string): string {
  return seal(render("compose/compose.mirror-kit.yaml", composeView(s, composeDir, prefetchProject)));
}
