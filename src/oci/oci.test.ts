import { describe, expect, it } from "vitest";
import { parseDigest } from "./digest.js";
import { MirrorError, noSuchEndpoint, toOciError, upstreamFault, ERROR_STATUS } from "./errors.js";
import { accepts, isMediaType, parseAccept, servedManifestType, sniffManifestType, MediaType } from "./mediatypes.js";
import { parseReference, validateName } from "./names.js";

const HEX = "a".repeat(64);

describe("repository names", () => {
  it.each([
    ["library/busybox"],
    ["busybox"],
    ["a/b/c/d"],
    ["my-org/my.image_name"],
    ["ghcr.io/owner/image"],
    ["a__b/c--d"],
  ])("accepts %s", (name) => {
    expect(validateName(name)).toBe(name);
  });

  it.each([
    ["../etc/passwd"],
    ["library/.."],
    ["UPPER/case"],
    ["a//b"],
    ["/leading"],
    ["trailing/"],
    ["a/%2e%2e/b"],
    ["a b"],
    ["_tags/x"],
    ["x".repeat(256)],
    [""],
  ])("rejects %j with NAME_INVALID", (name) => {
    expect(() => validateName(name)).toThrowError(expect.objectContaining({ code: "NAME_INVALID" }));
  });
});

describe("references", () => {
  it("reads a tag", () => {
    expect(parseReference("1.36-musl")).toEqual({ kind: "tag", tag: "1.36-musl" });
  });
  it("reads a digest", () => {
    const ref = parseReference(`sha256:${HEX}`);
    expect(ref.kind === "digest" && ref.digest.hex).toBe(HEX);
  });
  it.each([[".hidden"], ["..", ], ["-dash"], ["t".repeat(129)], ["a/b"]])("rejects tag %j", (tag) => {
    expect(() => parseReference(tag)).toThrowError(expect.objectContaining({ code: "TAG_INVALID" }));
  });
  it.each([["sha256:abc"], [`md5:${HEX}`], [`sha256:${"A".repeat(64)}`], [`sha256:${HEX}/../x`]])("rejects digest %j", (d) => {
    expect(() => parseReference(d)).toThrowError(MirrorError);
  });
});

describe("digests", () => {
  it("accepts sha512", () => {
    expect(parseDigest(`sha512:${"b".repeat(128)}`).algorithm).toBe("sha512");
  });
  it("rejects a sha256 of the wrong length", () => {
    expect(() => parseDigest(`sha256:${"a".repeat(63)}`)).toThrowError(expect.objectContaining({ code: "DIGEST_INVALID" }));
  });
});

describe("error table", () => {
  it.each([
    ["BLOB_UNKNOWN", 404],
    ["MANIFEST_UNKNOWN", 404],
    ["NAME_INVALID", 400],
    ["DIGEST_INVALID", 400],
    ["UNAUTHORIZED", 401],
    ["DENIED", 403],
    ["UNSUPPORTED", 405],
    ["TOOMANYREQUESTS", 429],
    ["UNAVAILABLE", 503],
  ] as const)("%s is HTTP %i", (code, status) => {
    expect(ERROR_STATUS[code]).toBe(status);
    expect(toOciError(new MirrorError(code, "m"))).toEqual({ status, body: { errors: [{ code, message: "m" }] } });
  });

  it.each([
    ["content from upstream that failed its checks is a bad gateway, whatever the code", upstreamFault("DIGEST_INVALID", "m"), "DIGEST_INVALID", 502],
    ["an unknown path", noSuchEndpoint(), "UNSUPPORTED", 404],
    ["a bad page size", new MirrorError("PAGINATION_NUMBER_INVALID", "m"), "PAGINATION_NUMBER_INVALID", 400],
    ["a client's bad digest stays the client's fault", new MirrorError("DIGEST_INVALID", "m"), "DIGEST_INVALID", 400],
  ] as const)("%s: %s, HTTP %i", (_what, err, code, status) => {
    expect(toOciError(err).status).toBe(status);
    expect(toOciError(err).body.errors[0]?.code).toBe(code);
    expect(err.upstreamFault).toBe(status === 502);
  });

  it("never leaks the message of an unexpected error", () => {
    const out = toOciError(new Error("password=hunter2 at /secret/path"));
    expect(out.status).toBe(500);
    expect(JSON.stringify(out.body)).not.toContain("hunter2");
  });
});

describe("Accept negotiation", () => {
  it("reads Docker's repeated Accept lines", () => {
    const accepted = parseAccept([MediaType.dockerManifest, MediaType.dockerManifestList, MediaType.ociManifest]);
    expect(accepts(accepted, MediaType.dockerManifestList)).toBe(true);
    expect(accepts(accepted, MediaType.ociIndex)).toBe(false);
  });
  it("reads containerd's comma list with parameters", () => {
    const accepted = parseAccept(`${MediaType.dockerManifest}, ${MediaType.ociIndex};q=0.9, */*`);
    expect(accepted).toContain(MediaType.ociIndex);
    expect(accepts(accepted, "application/anything")).toBe(true);
  });
  it("treats no Accept header as accepting everything", () => {
    expect(accepts(parseAccept(undefined), MediaType.ociIndex)).toBe(true);
  });
  it("infers OCI types when mediaType is omitted", () => {
    expect(sniffManifestType(Buffer.from('{"schemaVersion":2,"manifests":[]}'))).toBe(MediaType.ociIndex);
    expect(sniffManifestType(Buffer.from('{"schemaVersion":2,"config":{},"layers":[]}'))).toBe(MediaType.ociManifest);
    expect(sniffManifestType(Buffer.from("not json"))).toBeUndefined();
  });
});

describe("the Content-Type a manifest is served with", () => {
  const doc = (mediaType?: string) => Buffer.from(JSON.stringify({ schemaVersion: 2, ...(mediaType === undefined ? {} : { mediaType }), config: {}, layers: [] }));
  it.each([
    ["a declared manifest type", MediaType.dockerManifest, doc(MediaType.dockerManifest), MediaType.dockerManifest],
    ["a declared type with parameters and capitals", "Application/VND.OCI.Image.Manifest.v1+json; charset=utf-8", doc(), MediaType.ociManifest],
    ["text/html over a body that names its type", "text/html", doc(MediaType.dockerManifest), MediaType.dockerManifest],
    ["application/json over an OCI manifest without mediaType (its shape)", "application/json", doc(), MediaType.ociManifest],
    ["no Content-Type at all", undefined, doc(MediaType.ociManifest), MediaType.ociManifest],
    ["text/html over a body with an unknown type", "text/html", doc("text/html"), undefined],
    ["a body whose type has a control character", "text/plain", doc("application/vnd.oci.image.manifest.v1+json\r\nx: y"), undefined],
    ["a declared type with a control character", "application/vnd.oci.image.manifest.v1+json\u0007", doc("nope/x\n"), undefined],
    ["a vendor type nobody allowed", "application/vnd.example.thing+json", doc("application/vnd.example.thing+json"), undefined],
  ])("%s", (_what, declared, body, expected) => {
    expect(servedManifestType(declared, body)).toBe(expected);
  });
  it("serves a type the configuration allows", () => {
    const t = "application/vnd.example.thing+json";
    expect(servedManifestType(t, doc(t), new Set([t]))).toBe(t);
  });
  it.each([
    ["application/vnd.oci.image.manifest.v1+json", true],
    ["text/html", true],
    ["text/html\r\nset-cookie: x", false],
    ["text/ html", false],
    ["nonsense", false],
    ["", false],
  ])("%j is a media type: %s", (value, ok) => {
    expect(isMediaType(value)).toBe(ok);
  });
});
