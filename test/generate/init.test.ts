// runInit end to end on temp projects: target selection, bad input (files left byte-identical and the
// message naming the file), hand edits (refused without --force), prompting, and option changes.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, test } from "vitest";
import { GenerateError } from "../../src/generate/errors.js";
import { runInit, type InitOptions } from "../../src/generate/init.js";
import { renderComposeFragment } from "../../src/generate/compose-view.js";
import { packageVersion } from "../../src/generate/render.js";
import { DEFAULT_IMAGE, resolveSettings } from "../../src/generate/settings.js";
import { readTree, Sink, tempDir } from "./support.js";

const COMPOSE = "services:\n  app:\n    image: busybox\n";
const VAGRANTFILE = 'Vagrant.configure("2") do |config|\n  config.vm.box = "debian/bookworm64"\nend\n';
const DEVCONTAINER = '{\n  // comment\n  "image": "debian"\n}\n';

function project(files: Record<string, string>): string {
  const dir = tempDir("mk-init-");
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
  return dir;
}

async function init(dir: string, options: InitOptions = {}, extra: { isTTY?: boolean; answer?: boolean } = {}) {
  const out = new Sink();
  let asked = 0;
  const result = await runInit(
    { yes: !extra.isTTY, ...options },
    { cwd: dir, stdout: out, isTTY: extra.isTTY ?? false, confirm: async () => (asked++, extra.answer ?? false) },
  );
  return { out: out.text, result, asked };
}

async function failure(dir: string, options: InitOptions = {}): Promise<GenerateError> {
  const before = readTree(dir);
  const err = await init(dir, options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GenerateError);
  expect(readTree(dir), "files must be byte-identical after a failure").toEqual(before);
  return err as GenerateError;
}

describe("bad input leaves every file as it was and names the problem", () => {
  test.each([
    ["malformed compose file", { "compose.yaml": "services:\n  app: [\n", Vagrantfile: VAGRANTFILE }, {}, "BAD_INPUT", /^compose\.yaml: not valid YAML at line 3/],
    ["compose format 1", { "docker-compose.yml": "web:\n  image: nginx\n" }, {}, "BAD_INPUT", /^docker-compose\.yml: Compose file format 1/],
    ["services as a list", { "compose.yaml": "services:\n  - app\n" }, {}, "BAD_INPUT", /^compose\.yaml: services: must be a mapping/],
    ["Vagrantfile without configure", { Vagrantfile: "puts 1\n", "compose.yaml": COMPOSE }, {}, "BAD_INPUT", /^Vagrantfile: no Vagrant\.configure/],
    ["Vagrantfile missing its end", { Vagrantfile: 'Vagrant.configure("2") do |config|\n  config.vm.box = "x"\n' }, {}, "BAD_INPUT", /^Vagrantfile: cannot find the "end"/],
    ["malformed devcontainer.json", { ".devcontainer/devcontainer.json": '{ "image": "x" "features": {} }' }, {}, "BAD_INPUT", /^\.devcontainer\/devcontainer\.json: not valid JSON with comments at line 1, column 16/],
    ["features as an array", { ".devcontainer/devcontainer.json": '{ "features": [] }' }, {}, "BAD_INPUT", /"features" must be an object/],
    ["mirror URL without scheme", { "compose.yaml": COMPOSE }, { mirrorUrl: "10.0.0.5:5000" }, "BAD_OPTION", /--mirror-url: expected a URL with a scheme like http:\/\/10\.0\.0\.5:5000/],
    ["mirror URL with credentials", { "compose.yaml": COMPOSE }, { mirrorUrl: "http://u:p@h:5000" }, "BAD_OPTION", /credentials/],
    ["port out of range", { "compose.yaml": COMPOSE }, { port: 70000 }, "BAD_OPTION", /--port: expected an integer from 1 to 65535, got "70000"/],
    ["malformed upstream", { "compose.yaml": COMPOSE }, { upstream: ["harbor"] }, "BAD_OPTION", /--upstream: expected NAME=URL/],
    ["--vagrant without a Vagrantfile", { "compose.yaml": COMPOSE }, { vagrant: true }, "NOT_FOUND", /^Vagrantfile: not found/],
    ["nothing to wire", { "README.md": "hi\n" }, {}, "NOT_FOUND", /nothing to wire/],
  ] as const)("%s", async (_name, files, options, code, message) => {
    const err = await failure(project(files), options);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  });
});

describe("generated files and blocks edited by hand", () => {
  test.each([
    [".mirror-kit/provision.sh", (t: string) => t.replace("set -eu", "set -eux")],
    ["Vagrantfile", (t: string) => t.replace('"MIRROR_KIT_PORT" => "5000"', '"MIRROR_KIT_PORT" => "5001"')],
    ["compose.yaml", (t: string) => t.replace("restart: unless-stopped", "restart: always")],
    [".devcontainer/mirror-kit/install.sh", (t: string) => `${t}echo extra\n`],
    [".devcontainer/mirror-kit/devcontainer-feature.json", (t: string) => t.replace('"insecure": {', '"insecure":  {')],
    [".devcontainer/devcontainer.json", (t: string) => t.replace('"./mirror-kit": {}', '"./mirror-kit": { "insecure": false }')],
  ])("%s: reported and skipped while the other files are updated; replaced with --force", async (rel, edit) => {
    const dir = project({ "compose.yaml": COMPOSE, Vagrantfile: VAGRANTFILE, ".devcontainer/devcontainer.json": DEVCONTAINER });
    await init(dir);
    const generated = readTree(dir);
    const edited = edit(generated[rel]!);
    expect(edited).not.toBe(generated[rel]);
    writeFileSync(join(dir, rel), edited);
    const { out } = await init(dir, { host: "10.1.2.3", port: 6000 });
    expect(out).toMatch(new RegExp(`^skipped +${rel.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: .*--force`, "m"));
    const after = readTree(dir);
    expect(after[rel], "the hand-edited file is left exactly as edited").toBe(edited);
    const updated = Object.keys(generated).filter((f) => f !== rel && after[f] !== generated[f]);
    expect(updated.length, "the other generated files follow the new options").toBeGreaterThan(0);
    await init(dir, { force: true });
    expect(readTree(dir)).toEqual(generated);
  });

  test("a re-run with a new --host updates its own earlier output everywhere, without --force", async () => {
    const dir = project({ "compose.yaml": COMPOSE, Vagrantfile: VAGRANTFILE, ".devcontainer/devcontainer.json": DEVCONTAINER });
    await init(dir);
    const { out } = await init(dir, { host: "10.1.2.3" });
    expect(out).not.toContain("skipped");
    expect(readFileSync(join(dir, "Vagrantfile"), "utf8")).toContain('ENV.fetch("MIRROR_KIT_URL", "http://10.1.2.3:5000")');
    expect(readFileSync(join(dir, ".devcontainer/devcontainer.json"), "utf8")).toContain('"./mirror-kit": { "mirrorUrl": "http://10.1.2.3:5000" }');
    await init(dir, { host: "10.4.5.6" });
    expect(readFileSync(join(dir, ".devcontainer/devcontainer.json"), "utf8")).toContain('"./mirror-kit": { "mirrorUrl": "http://10.4.5.6:5000" }');
    expect((await init(dir, { host: "10.4.5.6" })).out).toContain("everything is up to date");
  });

  test("an unedited generation is updated when options change, without --force", async () => {
    const dir = project({ "compose.yaml": COMPOSE, Vagrantfile: VAGRANTFILE });
    await init(dir);
    await init(dir, { port: 6000 });
    expect(readFileSync(join(dir, "compose.yaml"), "utf8")).toContain('"6000:5000"');
    expect(readFileSync(join(dir, "Vagrantfile"), "utf8")).toContain('"MIRROR_KIT_PORT" => "6000"');
    expect(readFileSync(join(dir, ".mirror-kit/provision.sh"), "utf8")).toContain("DEFAULT_PORT=6000");
    expect((await init(dir, { port: 6000 })).out).toContain("everything is up to date");
  });

  test("a hand-written mirror-kit service equal to ours is left in the user's spelling", async () => {
    const fragment = renderComposeFragment(resolveSettings({}));
    const dir = project({ "compose.yaml": fragment.replace(/^#.*\n/gm, "") });
    const before = readTree(dir);
    expect((await init(dir)).out).toContain("everything is up to date");
    expect(readTree(dir)).toEqual(before);
  });
});

describe("target selection and prompting", () => {
  test("--compose in a folder without a Compose file creates compose.yaml with the mirror alone", async () => {
    const dir = project({ Vagrantfile: VAGRANTFILE });
    await init(dir, { compose: true });
    expect(readFileSync(join(dir, "compose.yaml"), "utf8")).toBe(renderComposeFragment(resolveSettings({})));
    expect(readFileSync(join(dir, "Vagrantfile"), "utf8")).toBe(VAGRANTFILE);
  });

  test("compose.yaml wins over docker-compose.yml, as in Compose", async () => {
    const dir = project({ "compose.yaml": COMPOSE, "docker-compose.yml": COMPOSE });
    await init(dir);
    expect(readFileSync(join(dir, "compose.yaml"), "utf8")).toContain("mirror-kit:");
    expect(readFileSync(join(dir, "docker-compose.yml"), "utf8")).toBe(COMPOSE);
  });

  test("every .devcontainer/*/devcontainer.json gets its own Feature copy", async () => {
    const dir = project({ ".devcontainer/a/devcontainer.json": DEVCONTAINER, ".devcontainer/b/devcontainer.json": DEVCONTAINER });
    await init(dir);
    for (const sub of ["a", "b"]) {
      expect(existsSync(join(dir, `.devcontainer/${sub}/mirror-kit/install.sh`))).toBe(true);
      expect(readFileSync(join(dir, `.devcontainer/${sub}/devcontainer.json`), "utf8")).toContain('"./mirror-kit": {}');
    }
  });

  test("the Feature lists docker-in-docker under installsAfter only when the devcontainer uses it", async () => {
    const dir = project({ ".devcontainer/devcontainer.json": DEVCONTAINER });
    const feature = join(dir, ".devcontainer/mirror-kit/devcontainer-feature.json");
    await init(dir);
    expect(JSON.parse(readFileSync(feature, "utf8"))).not.toHaveProperty("installsAfter");
    // Added later: the re-run updates its own Feature JSON (recognised through install.sh's record).
    writeFileSync(
      join(dir, ".devcontainer/devcontainer.json"),
      readFileSync(join(dir, ".devcontainer/devcontainer.json"), "utf8").replace('"features": {', '"features": { "ghcr.io/devcontainers/features/docker-in-docker:2": {},'),
    );
    const { out } = await init(dir);
    expect(out).not.toContain("skipped");
    expect(JSON.parse(readFileSync(feature, "utf8")).installsAfter).toEqual(["ghcr.io/devcontainers/features/docker-in-docker"]);
  });

  test("on a terminal without --yes it shows the diff and writes nothing when declined", async () => {
    const dir = project({ "compose.yaml": COMPOSE });
    const { out, asked } = await init(dir, {}, { isTTY: true, answer: false });
    expect(asked).toBe(1);
    expect(out).toContain("+++ b/compose.yaml");
    expect(readFileSync(join(dir, "compose.yaml"), "utf8")).toBe(COMPOSE);
    await init(dir, {}, { isTTY: true, answer: true });
    expect(readFileSync(join(dir, "compose.yaml"), "utf8")).toContain("mirror-kit:");
  });

  test("without a terminal and without --yes it prints the plan, writes nothing and fails", async () => {
    const dir = project({ "compose.yaml": COMPOSE });
    const out = new Sink();
    let asked = 0;
    const err = await runInit({}, { cwd: dir, stdout: out, isTTY: false, confirm: async () => (asked++, true) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GenerateError);
    expect((err as GenerateError).code).toBe("NOT_CONFIRMED");
    expect((err as GenerateError).message).toContain("--yes");
    expect(asked).toBe(0);
    expect(out.text).toContain("+++ b/compose.yaml");
    expect(readFileSync(join(dir, "compose.yaml"), "utf8")).toBe(COMPOSE);
  });

  test("a project without a Compose target is told to start the mirror with `mirror-kit up`", async () => {
    const { out } = await init(project({ Vagrantfile: VAGRANTFILE }));
    expect(out).toContain("mirror-kit up");
  });
});

describe("daemons init finds, and what it leaves to the host", () => {
  test("a dind service is reported as wired, one it cannot extend gets the flags to add, and the host's daemon is named as left to do", async () => {
    const dir = project({ "compose.yaml": "services:\n  ci:\n    image: docker:27-dind\n  odd:\n    image: docker:dind\n    command: sh -c 'dockerd-entrypoint.sh'\n" });
    const { out } = await init(dir);
    expect(out).toContain("compose.yaml: service ci runs its own Docker daemon; it pulls through the mirror (--registry-mirror=http://mirror-kit:5000)");
    expect(out).toContain("compose.yaml: service odd runs its own Docker daemon, but its command is a string with quotes or variables, which mirror-kit does not rewrite; add --registry-mirror=http://mirror-kit:5000 --insecure-registry=mirror-kit:5000 to its dockerd by hand");
    expect(out).toContain("next: start the mirror with `docker compose up -d mirror-kit`");
    expect(out).toContain("`mirror-kit wire docker --apply`");
  });

  test("it names the image the mirror runs and how that image is obtained", async () => {
    const { out } = await init(project({ "compose.yaml": COMPOSE }));
    expect(out).toContain(`image: the mirror runs ${DEFAULT_IMAGE}, the image the mirror-kit ${packageVersion()} release publishes; \`docker compose up\` pulls it`);
    expect(out).toContain("build it on this machine first with `mirror-kit image`");
    const custom = await init(project({ "compose.yaml": COMPOSE }), { image: "registry.corp/mirror-kit:7" });
    expect(custom.out).toContain("image: the mirror runs registry.corp/mirror-kit:7 (given with --image)");
    expect(custom.out).toContain("`mirror-kit image --tag registry.corp/mirror-kit:7`");
  });
});

describe("host ports the Compose file already publishes", () => {
  test.each([
    ["short syntax", '      - "5000:5000"\n', 5001],
    ["with a host IP", '      - "127.0.0.1:5000:80/tcp"\n', 5001],
    ["a range", '      - "4999-5002:4999-5002"\n', 5003],
    ["long syntax", "      - target: 80\n        published: 5000\n", 5001],
    ["an interpolated default", '      - "${API_PORT:-5000}:80"\n', 5001],
  ])("%s: the default port moves to the next free one, and init says so", async (_name, ports, expected) => {
    const dir = project({ "compose.yaml": `services:\n  api:\n    image: busybox\n    ports:\n${ports}`, Vagrantfile: VAGRANTFILE });
    const { out } = await init(dir);
    expect(out).toContain(`port 5000 is already published by service "api" in compose.yaml; the mirror uses ${expected}`);
    expect(readFileSync(join(dir, "compose.yaml"), "utf8")).toContain(`"${expected}:5000"`);
    expect(readFileSync(join(dir, "Vagrantfile"), "utf8")).toContain(`"MIRROR_KIT_PORT" => "${expected}"`);
    expect((await init(dir)).out).toContain("everything is up to date");
  });

  test.each([
    ["a container port only", "      - 5000\n"],
    ["udp", '      - "5000:5000/udp"\n'],
    ["another host port", '      - "8080:5000"\n'],
  ])("%s is no clash", async (_name, ports) => {
    const dir = project({ "compose.yaml": `services:\n  api:\n    image: busybox\n    ports:\n${ports}` });
    await init(dir);
    expect(readFileSync(join(dir, "compose.yaml"), "utf8")).toContain('"5000:5000"');
  });

  test("an explicit --port that clashes is refused with a proposal, and nothing is written", async () => {
    const dir = project({ "compose.yaml": 'services:\n  api:\n    image: busybox\n    ports: ["6000:80", "6001:81"]\n' });
    const err = await failure(dir, { port: 6000 });
    expect(err.code).toBe("PORT_IN_USE");
    expect(err.message).toBe('compose.yaml: port 6000 is already published by service "api"; pick another, e.g. --port 6002');
  });
});

describe("settings reach every target", () => {
  test("--mirror-url is used verbatim by the VM and the devcontainer", async () => {
    const dir = project({ Vagrantfile: VAGRANTFILE, ".devcontainer/devcontainer.json": DEVCONTAINER });
    await init(dir, { mirrorUrl: "https://mirror.corp.example/" });
    expect(readFileSync(join(dir, "Vagrantfile"), "utf8")).toContain('ENV.fetch("MIRROR_KIT_URL", "https://mirror.corp.example")');
    expect(readFileSync(join(dir, ".devcontainer/devcontainer.json"), "utf8")).toContain('"./mirror-kit": { "mirrorUrl": "https://mirror.corp.example" }');
  });

  test("--upstream, --storage and --image shape the Compose service and the VM script", async () => {
    const dir = project({ "compose.yaml": COMPOSE, Vagrantfile: VAGRANTFILE });
    await init(dir, { upstream: ["harbor.example.com=https://harbor.example.com/"], storage: "./cache", image: "mk-test/busybox:1" });
    const compose = readFileSync(join(dir, "compose.yaml"), "utf8");
    expect(compose).toContain("image: mk-test/busybox:1");
    expect(compose).toContain('MIRROR_KIT_UPSTREAMS: "harbor.example.com=https://harbor.example.com"');
    expect(compose).toContain('- "./cache:/var/lib/mirror-kit"');
    expect(compose).not.toContain("volumes:\n  mirror-kit-data");
    expect(readFileSync(join(dir, ".mirror-kit/provision.sh"), "utf8")).toContain('write_hosts_toml "harbor.example.com" "https://harbor.example.com"');
  });

  test("--host gives the VM a fixed address instead of detection", async () => {
    const dir = project({ Vagrantfile: VAGRANTFILE });
    await init(dir, { host: "192.168.56.1", port: 5001 });
    expect(readFileSync(join(dir, "Vagrantfile"), "utf8")).toContain('ENV.fetch("MIRROR_KIT_URL", "http://192.168.56.1:5001")');
  });
});
