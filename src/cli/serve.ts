// `mirror-kit serve`: run the mirror. Flags over environment over config file over defaults.
import type { CommandModule } from "yargs";
import { loadConfig, parseUpstreamFlags, type Env, type LoadedConfig } from "../config/load.js";
import type { ConfigInput } from "../config/schema.js";
import type { RunningMirror } from "../server.js";
import { dropPrivileges } from "./run-as.js";
import { recordServe } from "./serve-record.js";

export interface ServeArgs {
  listen?: string;
  storage?: string;
  upstream?: string[];
  config?: string;
  "log-level"?: string;
  "log-format"?: string;
  "tag-freshness"?: string;
  "max-size"?: string;
  "tls-cert"?: string;
  "tls-key"?: string;
  "tls-client-ca"?: string[];
  "tls-min-version"?: string;
  parent?: string;
}

/** Flags over environment over config file over defaults: what serve runs with (healthcheck uses it too). */
export async function loadServeConfig(args: ServeArgs, env: Env): Promise<LoadedConfig> {
  const flags: Record<string, unknown> = {};
  if (args.listen !== undefined) flags.listen = args.listen;
  if (args.storage !== undefined) flags.storage = args.storage;
  if (args["log-level"] !== undefined) flags.logLevel = args["log-level"];
  if (args.parent !== undefined) flags.parent = { url: args.parent };
  if (args["log-format"] !== undefined) flags.logFormat = args["log-format"];
  const cache: Record<string, string> = {};
  if (args["tag-freshness"] !== undefined) cache.tagFreshness = args["tag-freshness"];
  if (args["max-size"] !== undefined) cache.maxSize = args["max-size"];
  if (Object.keys(cache).length > 0) flags.cache = cache;
  const tls: Record<string, unknown> = {};
  if (args["tls-cert"] !== undefined) tls.certificate = args["tls-cert"];
  if (args["tls-key"] !== undefined) tls.key = args["tls-key"];
  if (args["tls-client-ca"]?.length) tls.clientCAs = args["tls-client-ca"];
  if (args["tls-min-version"] !== undefined) tls.minimumVersion = args["tls-min-version"];
  if (Object.keys(tls).length > 0) flags.tls = tls;
  if (args.upstream?.length) flags.upstreams = parseUpstreamFlags(args.upstream);
  return loadConfig({ ...(args.config ? { file: args.config } : {}), env, flags: flags as ConfigInput });
}

/** Start the mirror from CLI arguments and an environment; the caller decides about signals. */
export async function runServe(args: ServeArgs, env: Env): Promise<RunningMirror> {
  const { config, warnings } = await loadServeConfig(args, env);
  // Loaded here, not at the top: `mirror-kit healthcheck` imports this module for loadServeConfig
  // and must start fast (Docker gives it 5 s on a loaded machine).
  const [{ createLogger }, { startMirror }, { readTlsFiles }] = await Promise.all([import("../observe/log.js"), import("../server.js"), import("../tls/listener.js")]);
  // Read while still root: a key mounted from the host is usually readable by its owner only (mirror-kit
  // cert writes it 0600), never by the image's service user.
  const tlsFiles = config.tls ? await readTlsFiles(config.tls) : undefined;
  await dropPrivileges(config.storage, env, env.MIRROR_KIT_RUN_DIR ? [env.MIRROR_KIT_RUN_DIR] : []);
  const log = createLogger(config.logLevel, undefined, config.logFormat);
  for (const w of warnings) log.warn(w);
  return startMirror(config, { logger: log, processMetrics: true, ...(tlsFiles ? { tlsFiles } : {}) });
}

export const serveCommand: CommandModule<object, ServeArgs> = {
  command: "serve",
  describe: "Run the pull-through registry mirror",
  builder: (y) =>
    y
      .option("listen", { type: "string", describe: "HOST:PORT to listen on (default 0.0.0.0:5000; env MIRROR_KIT_LISTEN)" })
      .option("storage", { type: "string", describe: "cache folder (default ./mirror-kit-data; env MIRROR_KIT_STORAGE)" })
      .option("upstream", { type: "string", array: true, describe: "NAME=URL, repeatable: add or override an upstream (env MIRROR_KIT_UPSTREAMS)" })
      .option("parent", { type: "string", describe: "chain to a parent mirror: fetch every upstream through it, and directly while it is down (env MIRROR_KIT_PARENT)" })
      .option("config", { type: "string", describe: "YAML config file: mirror-kit's own format or a distribution config.yml (env MIRROR_KIT_CONFIG)" })
      .option("log-level", { type: "string", describe: "fatal|error|warn|info|debug|trace|silent (default info)" })
      .option("log-format", { type: "string", describe: "json|pretty|auto: auto is pretty on a terminal, JSON otherwise (default auto; env MIRROR_KIT_LOG_FORMAT)" })
      .option("tag-freshness", { type: "string", describe: "serve cached tags this long without asking upstream (default 1m)" })
      .option("max-size", { type: "string", describe: "cap the cache, e.g. 20GB: least recently used content is evicted (default: no cap; env MIRROR_KIT_MAX_SIZE)" })
      .option("tls-cert", { type: "string", describe: "serve HTTPS with this PEM certificate (chain); re-read on SIGHUP and on change (env MIRROR_KIT_TLS_CERT)" })
      .option("tls-key", { type: "string", describe: "the certificate's PEM private key (env MIRROR_KIT_TLS_KEY)" })
      .option("tls-client-ca", { type: "string", array: true, describe: "mutual TLS: require client certificates signed by this CA, repeatable (env MIRROR_KIT_TLS_CLIENT_CAS, comma-separated)" })
      .option("tls-min-version", { type: "string", describe: "oldest TLS version accepted: tls1.0|tls1.1|tls1.2|tls1.3 (default tls1.2; env MIRROR_KIT_TLS_MIN_VERSION)" })
      .example("$0 serve", "Docker Hub and the other public registries, cached in ./mirror-kit-data")
      .example("$0 serve --upstream docker.io=http://10.0.0.5:5000", "another registry as the docker.io upstream")
      .example("$0 serve --tls-cert mirror-kit-tls/server.crt --tls-key mirror-kit-tls/server.key", "HTTPS with the certificate `mirror-kit cert` made"),
  handler: async (args) => {
    // The signal handlers come first: "mirror-kit listening" is printed inside runServe, and a
    // SIGTERM that arrives between that line and runServe's return (a loaded machine) must shut
    // down cleanly, not end the process by the signal's default action.
    const starting = runServe(args, process.env);
    let record: ReturnType<typeof recordServe> | undefined;
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`mirror-kit: ${signal}, shutting down\n`);
      starting
        .then((mirror) => mirror.close())
        .then(() => record?.then((r) => r.remove()))
        .then(
          () => process.exit(0),
          () => process.exit(1),
        );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    // SIGHUP would otherwise end the process; here it re-reads a renewed certificate.
    process.on("SIGHUP", () => {
      void starting.then((mirror) => {
        if (!mirror.config.tls) process.stderr.write("mirror-kit: SIGHUP, nothing to reload (not serving TLS)\n");
        else void mirror.reloadTls("SIGHUP");
      }, () => undefined);
    });
    const mirror = await starting;
    // What healthcheck asks when run without flags: the address this process really listens on.
    const tls = mirror.config.tls;
    record = recordServe(mirror.url, tls ? { certFile: tls.certFile, keyFile: tls.keyFile, clientAuth: tls.clientCAFiles.length > 0 } : undefined);
  },
};
