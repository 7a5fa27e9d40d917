// containerd's config.toml read as containerd reads it (version, CRI on or off, config_path), and
// the edit `wire containerd` makes: certs.d first in config_path, nothing else changed.
import { describe, expect, it } from "vitest";
import { ensureConfigPath, readContainerdConfig } from "./containerd-config.js";

const F = "/etc/containerd/config.toml";
// Debian 12's containerd package ships this file (docker.io depends on it).
const DEBIAN = `version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
`;
// The registry part of what `containerd config default` (1.6) prints: an empty config_path and an empty mirrors table.
const DEFAULT = `disabled_plugins = []
version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = ""

      [plugins."io.containerd.grpc.v1.cri".registry.auths]

      [plugins."io.containerd.grpc.v1.cri".registry.mirrors]
`;
// Docker's containerd.io package: a version 1 file that turns CRI off by its short id.
const DOCKER_CE = `disabled_plugins = ["cri"]\n`;

describe("reading config.toml as containerd does", () => {
  it.each([
    ["no file: containerd's defaults", null, { version: 2, criEnabled: true, configPath: [], configPathKey: false }],
    ["Debian's shipped file", DEBIAN, { version: 2, criEnabled: true, configPath: [], configPathKey: false }],
    ["containerd config default", DEFAULT, { version: 2, criEnabled: true, configPath: [], configPathKey: true, deprecatedMirrors: [] }],
    ["docker-ce's v1 file, CRI off by short id", DOCKER_CE, { version: 1, criEnabled: false }],
    ["a v1 file naming CRI by URI does not turn it off (measured)", 'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n', { version: 1, criEnabled: true }],
    ["v2 CRI off", 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n', { version: 2, criEnabled: false }],
    ["v1 config_path", '[plugins.cri.registry]\nconfig_path = "/etc/containerd/certs.d"\n', { version: 1, configPath: ["/etc/containerd/certs.d"], registryTable: "[plugins.cri.registry]" }],
    ["several folders", 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\nconfig_path = "/a:/b"\n', { configPath: ["/a", "/b"] }],
    ["v3 (containerd 2)", 'version = 3\n[plugins."io.containerd.cri.v1.images".registry]\nconfig_path = "/x"\n', { version: 3, configPath: ["/x"] }],
    ["deprecated mirrors", 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\nendpoint = ["https://x"]\n', { deprecatedMirrors: ["docker.io"] }],
  ])("%s", (_what, text, expected) => {
    expect(readContainerdConfig(text, F)).toMatchObject(expected);
  });

  it.each([
    ["not TOML", "version = 2\n[plugins\n", /not valid TOML at line 2/],
    ["a short id in a v2 file (containerd refuses to start)", 'version = 2\ndisabled_plugins = ["cri"]\n', /invalid disabled plugin URI "cri"/],
    ["an unknown version", "version = 7\n", /version = 7/],
  ])("refuses %s, naming the file", (_what, text, message) => {
    expect(() => readContainerdConfig(text, F)).toThrowError(expect.objectContaining({ code: "BAD_INPUT", message: expect.stringMatching(message) }));
  });
});

describe("wire's edit: certs.d first in CRI's config_path", () => {
  it.each([
    ["Debian's file gets the registry table", DEBIAN, `${DEBIAN}\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n`],
    ["an empty config_path is filled in, the empty mirrors table stays", DEFAULT, DEFAULT.replace('config_path = ""', 'config_path = "/etc/containerd/certs.d"')],
    ["other folders keep their place after certs.d", 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/docker/certs.d"\n', 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"\n'],
    ["a v1 file gets the v1 table", "root = \"/var/lib/containerd\"\n", 'root = "/var/lib/containerd"\n\n[plugins.cri.registry]\n  config_path = "/etc/containerd/certs.d"\n'],
    ["CRI off: unchanged", DOCKER_CE, DOCKER_CE],
  ])("%s", (_what, before, after) => {
    const out = ensureConfigPath(before, F);
    expect(out).toBe(after);
    // Applying it again changes nothing.
    expect(ensureConfigPath(out, F)).toBe(out);
  });

  it("refuses deprecated mirrors, which containerd refuses beside config_path", () => {
    expect(() => ensureConfigPath('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\nendpoint = ["https://x"]\n', F)).toThrowError(expect.objectContaining({ code: "CONFLICT" }));
  });

  it("refuses, with the line to add, a layout it cannot edit safely", () => {
    const dotted = 'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\nregistry.auths = {}\n';
    expect(() => ensureConfigPath(dotted, F)).toThrowError(expect.objectContaining({ code: "BAD_INPUT", message: expect.stringContaining('add config_path = "/etc/containerd/certs.d" to [plugins."io.containerd.grpc.v1.cri".registry] by hand') }));
  });
});
