// The CAs upstream TLS is verified with: Node's defaults (its roots and NODE_EXTRA_CA_CERTS, checked
// here because Node only prints a warning when it cannot load it), plus a per-upstream `ca` file.
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import * as tls from "node:tls";
import type { MirrorConfig } from "../config/resolve.js";
import { ConfigError } from "../config/schema.js";

type Env = Readonly<Record<string, string | undefined>>;

export interface UpstreamTrust {
  /** Upstream name -> its whole CA list (defaults + its file), for upstreams with a `ca` file. */
  readonly perUpstream: ReadonlyMap<string, readonly string[]>;
  /** What was loaded, for the startup log: file and certificate count. */
  readonly loaded: readonly { setting: string; file: string; certificates: number }[];
}

/**
 * Read and check every CA file the configuration names. A file that cannot be read or holds no
 * certificate refuses to start, naming the setting: trusting less than the user said would fail
 * every pull, and silently trusting Node's roots alone would hide why.
 */
export async function loadUpstreamTrust(config: MirrorConfig, env: Env = process.env): Promise<UpstreamTrust> {
  const loaded: { setting: string; file: string; certificates: number }[] = [];
  let extra: string[] = [];
  const extraFile = env.NODE_EXTRA_CA_CERTS;
  if (extraFile) {
    extra = await readCertificates(extraFile, "NODE_EXTRA_CA_CERTS");
    loaded.push({ setting: "NODE_EXTRA_CA_CERTS", file: extraFile, certificates: extra.length });
  }
  const perUpstream = new Map<string, readonly string[]>();
  const byName = new Map([...config.upstreams.values()].map((u) => [u.name, u]));
  for (const upstream of byName.values()) {
    if (upstream.caFile === undefined) continue;
    const setting = `upstreams.${upstream.name}.ca`;
    const own = await readCertificates(upstream.caFile, setting);
    loaded.push({ setting, file: upstream.caFile, certificates: own.length });
    // Added to what Node trusts anyway: a `ca` option alone would replace those roots.
    perUpstream.set(upstream.name, [...defaultCertificates(extra), ...own]);
  }
  return { perUpstream, loaded };
}

/** Node's default trust list: with Node 22.15+ straight from Node (honours --use-system-ca too). */
function defaultCertificates(extra: readonly string[]): string[] {
  const get = (tls as { getCACertificates?: (type: "default") => string[] }).getCACertificates;
  if (typeof get === "function") return get("default");
  return [...tls.rootCertificates, ...extra];
}

async function readCertificates(file: string, setting: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new ConfigError(`invalid configuration:\n  ${setting}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new ConfigError(`invalid configuration:\n  ${setting}: ${file} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)`);
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new ConfigError(`invalid configuration:\n  ${setting}: certificate ${i + 1} in ${file} cannot be parsed: ${(err as Error).message}`);
    }
  }
  return blocks;
}
