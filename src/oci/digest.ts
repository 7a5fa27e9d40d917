// Content digests: parsing, validation and streaming hashers.
// A digest string reaches the filesystem only after it passed parseDigest (hex of a fixed length).
import { createHash, type Hash } from "node:crypto";
import { MirrorError } from "./errors.js";

export type Algorithm = "sha256" | "sha512";

export interface Digest {
  readonly algorithm: Algorithm;
  readonly hex: string;
  /** Canonical "algorithm:hex" form. */
  readonly value: string;
}

const HEX_LENGTH: Record<Algorithm, number> = { sha256: 64, sha512: 128 };
// Grammar from the OCI image spec (descriptor.md): algorithm ":" encoded.
const GRAMMAR = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

export function parseDigest(input: string): Digest {
  const m = GRAMMAR.exec(input);
  if (!m) throw new MirrorError("DIGEST_INVALID", `invalid digest ${JSON.stringify(truncate(input))}`);
  const algorithm = m[1] as string;
  const hex = m[2] as string;
  if (algorithm !== "sha256" && algorithm !== "sha512") {
    throw new MirrorError("DIGEST_INVALID", `unsupported digest algorithm ${JSON.stringify(truncate(algorithm))}`);
  }
  if (hex.length !== HEX_LENGTH[algorithm] || !/^[a-f0-9]+$/.test(hex)) {
    throw new MirrorError("DIGEST_INVALID", `invalid ${algorithm} digest ${JSON.stringify(truncate(input))}`);
  }
  return { algorithm, hex, value: `${algorithm}:${hex}` };
}

export function isDigest(input: string): boolean {
  try {
    parseDigest(input);
    return true;
  } catch {
    return false;
  }
}

export function hasher(algorithm: Algorithm): Hash {
  return createHash(algorithm);
}

export function digestOf(data: Uint8Array, algorithm: Algorithm = "sha256"): Digest {
  return parseDigest(`${algorithm}:${createHash(algorithm).update(data).digest("hex")}`);
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}
