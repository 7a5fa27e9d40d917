import { mkdtemp, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "./load.js";

async function file(content: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "mk-config-storage-"));
  const path = join(dir, "config.yml");
  await writeFile(path, content);
  return path;
}

describe("storage configuration", () => {
  it.each([
    ["a folder (the form every earlier config uses)", "storage: /var/cache/mk\n", "/var/cache/mk"],
    ["the filesystem driver with a root", "storage:\n  driver: filesystem\n  root: /srv/mk\n", "/srv/mk"],
    ["the filesystem driver with its default root", "storage:\n  driver: filesystem\n", "./mirror-kit-data"],
    ["nothing (the default folder)", "listen: 127.0.0.1:5000\n", "./mirror-kit-data"],
  ])("opens %s as the filesystem store", async (_case, yaml, root) => {
    const { config } = await loadConfig({ file: await file(yaml) });
    expect(config.store).toEqual({ driver: "filesystem", root });
    expect(config.storage).toBe(root);
  });

  it.each([
    ["an unknown driver", "storage:\n  driver: floppy\n", "storage.driver"],
    ["a misspelt filesystem field", "storage:\n  driver: filesystem\n  rootdir: /x\n", "storage"],
    ["an empty folder", 'storage: ""\n', "storage"],
    ["a replica name with a slash", "replica: a/b\n", "replica"],
    ["a replica name too long", `replica: ${"r".repeat(65)}\n`, "replica"],
  ])("refuses %s, naming the field", async (_case, yaml, field) => {
    await expect(loadConfig({ file: await file(yaml) })).rejects.toThrow(new RegExp(`\\n  ${field.replace(".", "\\.")}[.:]`));
  });

  it("names the replica after the host unless told, from the file or MIRROR_KIT_REPLICA", async () => {
    expect((await loadConfig()).config.replica).toBe(hostname());
    expect((await loadConfig({ file: await file("replica: mirror-1\n") })).config.replica).toBe("mirror-1");
    expect((await loadConfig({ file: await file("replica: mirror-1\n"), env: { MIRROR_KIT_REPLICA: "mirror-2" } })).config.replica).toBe("mirror-2");
  });

  it("lets MIRROR_KIT_STORAGE replace a storage object from the file", async () => {
    const { config } = await loadConfig({ file: await file("storage:\n  driver: filesystem\n  root: /srv/mk\n"), env: { MIRROR_KIT_STORAGE: "/from-env" } });
    expect(config.store).toEqual({ driver: "filesystem", root: "/from-env" });
  });
});

describe("S3 storage configuration", () => {
  const full = {
    driver: "s3",
    bucket: "mirror-cache",
    region: "eu-west-1",
    endpoint: "http://rgw.lan:7480",
    accessKey: "AKIA-TEST",
    secretKey: "secret-test",
    forcePathStyle: true,
    rootDirectory: "team",
    secure: false,
    chunkSize: 16 * 1024 * 1024,
    createBucket: false,
    spool: "/var/spool/mk",
  };

  it("reads mirror-kit's own form, every field, with the spool as the local folder", async () => {
    const { config } = await loadConfig({ file: await file(`storage: ${JSON.stringify(full)}\n`) });
    expect(config.store).toEqual(full);
    expect(config.storage).toBe("/var/spool/mk");
  });

  it("has defaults for everything but the bucket", async () => {
    const { config } = await loadConfig({ file: await file("storage: {driver: s3, bucket: mirror-cache}\n") });
    expect(config.store).toEqual({ driver: "s3", bucket: "mirror-cache", region: "us-east-1", forcePathStyle: false, rootDirectory: "", secure: true, chunkSize: 10 * 1024 * 1024, createBucket: true, spool: "./mirror-kit-data" });
  });

  it("reads distribution's storage.s3 keys from a registry:2 config.yml", async () => {
    const yaml = `version: 0.1
proxy:
  remoteurl: https://registry-1.docker.io
storage:
  s3:
    regionendpoint: http://rgw.lan:7480
    region: eu-west-1
    bucket: mirror-cache
    accesskey: AKIA-TEST
    secretkey: secret-test
    forcepathstyle: true
    rootdirectory: /registry/
    secure: false
    chunksize: 16777216
    v4auth: true
`;
    const { config } = await loadConfig({ file: await file(yaml) });
    expect(config.store).toEqual({ ...full, rootDirectory: "registry", createBucket: true, spool: "./mirror-kit-data" });
  });

  it("honours REGISTRY_STORAGE=s3 and REGISTRY_STORAGE_S3_* (strings, as the environment has them)", async () => {
    const { config } = await loadConfig({
      env: {
        REGISTRY_STORAGE: "s3",
        REGISTRY_STORAGE_S3_BUCKET: "mirror-cache",
        REGISTRY_STORAGE_S3_REGION: "eu-west-1",
        REGISTRY_STORAGE_S3_REGIONENDPOINT: "http://rgw.lan:7480",
        REGISTRY_STORAGE_S3_ACCESSKEY: "AKIA-TEST",
        REGISTRY_STORAGE_S3_SECRETKEY: "secret-test",
        REGISTRY_STORAGE_S3_FORCEPATHSTYLE: "true",
        REGISTRY_STORAGE_S3_ROOTDIRECTORY: "team",
        REGISTRY_STORAGE_S3_SECURE: "false",
        REGISTRY_STORAGE_S3_CHUNKSIZE: "16777216",
      },
    });
    expect(config.store).toEqual({ ...full, createBucket: true, spool: "./mirror-kit-data" });
  });

  it.each([
    ["no bucket", "storage: {driver: s3}\n", /\n  storage\.bucket: /],
    ["a bucket name S3 refuses", "storage: {driver: s3, bucket: My_Bucket}\n", /\n  storage\.bucket: expected a bucket name/],
    ["an access key without its secret", "storage: {driver: s3, bucket: abc, accessKey: k}\n", /\n  storage\.accessKey: accessKey and secretKey go together/],
    ["parts below S3's minimum", "storage: {driver: s3, bucket: abc, chunkSize: 1MB}\n", /\n  storage\.chunkSize: must be at least 5MB/],
    ["a misspelt field", "storage: {driver: s3, bucket: abc, pathStyle: true}\n", /\n  storage: Unrecognized key: "pathStyle"/],
  ])("refuses %s, naming the field", async (_case, yaml, message) => {
    await expect(loadConfig({ file: await file(yaml) })).rejects.toThrow(message);
  });

  it.each([
    ["storage.s3.encrypt: true", "encrypt: true", /storage\.s3\.encrypt: server-side encryption/],
    ["storage.s3.keyid", "keyid: k1", /storage\.s3\.keyid \(a KMS key\) is not supported/],
    ["storage.s3.skipverify: true", "skipverify: true", /storage\.s3\.skipverify: TLS verification cannot be turned off/],
    ["storage.s3.v4auth: false", "v4auth: false", /storage\.s3\.v4auth: false/],
    ["storage.s3.storageclass: REDUCED_REDUNDANCY", "storageclass: REDUCED_REDUNDANCY", /storage\.s3\.storageclass: only STANDARD/],
    ["an unknown storage.s3 key", "typo: 1", /storage\.s3\.typo: not a registry:2 setting/],
  ])("refuses %s from a registry:2 config, naming it", async (_case, line, message) => {
    const yaml = `version: 0.1\nproxy:\n  remoteurl: https://registry-1.docker.io\nstorage:\n  s3:\n    bucket: abc\n    ${line}\n`;
    await expect(loadConfig({ file: await file(yaml) })).rejects.toThrow(message);
  });

  it("takes a cache.maxSize with S3 storage, which evicts", async () => {
    expect((await loadConfig({ file: await file("storage: {driver: s3, bucket: abc}\ncache: {maxSize: 20GB}\n") })).config.cacheMaxBytes).toBe(20 * 1024 ** 3);
  });

  it("refuses storage.filesystem beside storage.s3 (one driver)", async () => {
    const yaml = "version: 0.1\nproxy:\n  remoteurl: https://registry-1.docker.io\nstorage:\n  filesystem:\n    rootdirectory: /x\n  s3:\n    bucket: abc\n";
    await expect(loadConfig({ file: await file(yaml) })).rejects.toThrow(/both configured; give one storage driver/);
  });
});
