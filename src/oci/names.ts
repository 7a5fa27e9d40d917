// Repository names, tags and references as the distribution spec defines them.
// Everything a client sends is validated here before it can become part of a path.
import { MirrorError } from "./errors.js";
import { type Digest, isDigest, parseDigest } from "./digest.js";

// distribution/reference: path-component = alpha-numeric (separator alpha-numeric)*
const COMPONENT = "[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*";
const NAME = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
export const MAX_NAME_LENGTH = 255;

export function validateName(name: string): string {
  if (name.length === 0 || name.length > MAX_NAME_LENGTH || !NAME.test(name)) {
    throw new MirrorError("NAME_INVALID", `invalid repository name ${JSON.stringify(name.slice(0, 300))}`);
  }
  return name;
}

export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

export type Reference = { kind: "tag"; tag: string } | { kind: "digest"; digest: Digest };

/** A manifest reference: a tag or a digest. */
export function parseReference(ref: string): Reference {
  if (ref.includes(":")) {
    if (!isDigest(ref) && !/^[a-z0-9]+(?:[+._-][a-z0-9]+)*:/.test(ref)) {
      throw new MirrorError("TAG_INVALID", `invalid reference ${JSON.stringify(ref.slice(0, 140))}`);
    }
    return { kind: "digest", digest: parseDigest(ref) };
  }
  if (!isValidTag(ref)) throw new MirrorError("TAG_INVALID", `invalid tag ${JSON.stringify(ref.slice(0, 140))}`);
  return { kind: "tag", tag: ref };
}
