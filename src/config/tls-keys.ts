// The TLS settings from outside: distribution's http.tls section, REGISTRY_HTTP_TLS_* and
// MIRROR_KIT_TLS_* variables, translated to mirror-kit's `tls:` section or refused by name.
import { parse as parseYaml } from "yaml";
import { ConfigError } from "./schema.js";

type Env = Readonly<Record<string, string | undefined>>;
type TlsInput = { certificate?: string; key?: string; clientCAs?: string[]; minimumVersion?: string };

const DISTRIBUTION_VERSIONS = ["tls1.0", "tls1.1", "tls1.2", "tls1.3"];

/** distribution's http.tls (certificate, key, clientcas, minimumtls); letsencrypt and the rest refused. */
export function tlsFromDistribution(tls: unknown, where: string): TlsInput | undefined {
  if (tls === undefined || tls === null) return undefined;
  if (typeof tls !== "object" || Array.isArray(tls)) throw new ConfigError(`${where}: expected a mapping`);
  const out: TlsInput = {};
  for (const [key, value] of Object.entries(tls as Record<string, unknown>)) {
    if (value === undefined || value === null || value === "") continue;
    if (key === "certificate" || key === "key") out[key] = expectString(value, `${where}.${key}`);
    else if (key === "clientcas") out.clientCAs = expectStringList(value, `${where}.clientcas`);
    else if (key === "minimumtls") out.minimumVersion = expectVersion(value, `${where}.minimumtls`);
    else refuse(`${where}.${key}`);
  }
  return out;
}

/** REGISTRY_HTTP_TLS_* as registry:2 reads them (values are YAML), then MIRROR_KIT_TLS_* over them. */
export function tlsFromEnv(env: Env): TlsInput | undefined {
  const out: TlsInput = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith("REGISTRY_HTTP_TLS") || raw === undefined || raw === "") continue;
    const value: unknown = parseYaml(raw);
    if (name === "REGISTRY_HTTP_TLS_CERTIFICATE") out.certificate = raw;
    else if (name === "REGISTRY_HTTP_TLS_KEY") out.key = raw;
    else if (name === "REGISTRY_HTTP_TLS_CLIENTCAS") out.clientCAs = expectStringList(value, name);
    else if (name === "REGISTRY_HTTP_TLS_MINIMUMTLS") out.minimumVersion = expectVersion(value, name);
    else refuse(name);
  }
  if (env.MIRROR_KIT_TLS_CERT) out.certificate = env.MIRROR_KIT_TLS_CERT;
  if (env.MIRROR_KIT_TLS_KEY) out.key = env.MIRROR_KIT_TLS_KEY;
  if (env.MIRROR_KIT_TLS_CLIENT_CAS) out.clientCAs = env.MIRROR_KIT_TLS_CLIENT_CAS.split(",").map((s) => s.trim()).filter(Boolean);
  if (env.MIRROR_KIT_TLS_MIN_VERSION) out.minimumVersion = env.MIRROR_KIT_TLS_MIN_VERSION;
  return Object.keys(out).length > 0 ? out : undefined;
}

// Let's Encrypt (ACME) and cipher-suite lists change who can reach the mirror and how; accepting
// them without doing what they say would leave an operator believing in a protection that is not there.
function refuse(setting: string): never {
  const hint = /letsencrypt/i.test(setting)
    ? "mirror-kit does not obtain certificates itself; get one with certbot (or `mirror-kit cert` for a LAN CA) and set certificate and key"
    : "mirror-kit supports certificate, key, clientcas and minimumtls";
  throw new ConfigError(`${setting} is not supported: ${hint}`);
}

function expectString(value: unknown, where: string): string {
  if (typeof value !== "string") throw new ConfigError(`${where}: expected a file path, got ${JSON.stringify(value)}`);
  return value;
}

function expectStringList(value: unknown, where: string): string[] {
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || !list.every((v) => typeof v === "string" && v !== "")) {
    throw new ConfigError(`${where}: expected a list of CA file paths, got ${JSON.stringify(value)}`);
  }
  return list as string[];
}

function expectVersion(value: unknown, where: string): string {
  if (typeof value !== "string" || !DISTRIBUTION_VERSIONS.includes(value)) {
    throw new ConfigError(`${where}: expected one of ${DISTRIBUTION_VERSIONS.join(", ")}, got ${JSON.stringify(value)}`);
  }
  return value;
}
