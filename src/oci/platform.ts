// Platforms of multi-arch images: the host's own, parsing OS/ARCH[/VARIANT], and choosing the
// entries of an index (or Docker manifest list) that a command was asked for.
import { MirrorKitError } from "../errors.js";
import { indexEntries, type PlatformEntry } from "./mediatypes.js";

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** The platform container images run as on this host (Docker's names for Node's process.arch). */
export function hostPlatform(): Platform {
  const arch: Record<string, Platform> = {
    x64: { os: "linux", architecture: "amd64" },
    arm64: { os: "linux", architecture: "arm64" },
    arm: { os: "linux", architecture: "arm", variant: "v7" },
    ia32: { os: "linux", architecture: "386" },
    ppc64: { os: "linux", architecture: "ppc64le" },
    s390x: { os: "linux", architecture: "s390x" },
    riscv64: { os: "linux", architecture: "riscv64" },
  };
  return arch[process.arch] ?? { os: "linux", architecture: process.arch };
}

/** "linux/amd64", "linux/arm64/v8". */
export function parsePlatform(value: string): Platform {
  const parts = value.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) {
    throw new MirrorKitError("MK_USAGE", `--platform: expected OS/ARCH[/VARIANT] such as linux/amd64, got ${JSON.stringify(value)}`);
  }
  return { os: parts[0] as string, architecture: parts[1] as string, ...(parts[2] ? { variant: parts[2] } : {}) };
}

/** --platform values (repeatable, comma lists, "all") to a filter: [] means every platform. */
export function platformsFromFlags(values: readonly string[]): Platform[] {
  if (values.includes("all")) return [];
  return values.length > 0 ? values.flatMap((p) => p.split(",")).map(parsePlatform) : [hostPlatform()];
}

export function platformName(p: { os?: string; architecture?: string; variant?: string } | undefined): string {
  return p ? [p.os, p.architecture, p.variant].filter(Boolean).join("/") : "unknown";
}

function matches(entry: PlatformEntry["platform"], wanted: Platform): boolean {
  return !!entry && entry.os === wanted.os && entry.architecture === wanted.architecture && (wanted.variant === undefined || entry.variant === wanted.variant);
}

/**
 * The entries of an index body that `platforms` asks for ([] = all, except attestation manifests,
 * which BuildKit marks as platform unknown/unknown). None matching is an error naming what there is.
 */
export function selectPlatforms(indexBody: Uint8Array, platforms: readonly Platform[]): PlatformEntry[] {
  const entries = indexEntries(indexBody);
  const chosen = platforms.length === 0 ? entries.filter((e) => e.platform?.os !== "unknown") : entries.filter((e) => platforms.some((p) => matches(e.platform, p)));
  if (chosen.length === 0) {
    throw new MirrorKitError("MK_PLATFORM_MISSING", `no ${platforms.map(platformName).join(" or ")} image in the index (it has ${entries.map((e) => platformName(e.platform)).join(", ") || "none"})`);
  }
  return chosen;
}
