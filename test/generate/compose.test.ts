// Merging the mirror-kit service into Compose files of many shapes: user text stays byte-exact
// outside the inserted lines, daemons get host-gateway once, and the merge is idempotent.
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { parse } from "yaml";
import { mergeCompose } from "../../src/generate/compose.js";
import { resolveSettings } from "../../src/generate/settings.js";
import { REPO } from "./support.js";

const s = resolveSettings({});
const merge = (text: string) => mergeCompose(text, "compose.yaml", s, false);

/** The user's lines must all survive, in order. */
function expectLinesKept(before: string, after: string): void {
  let at = 0;
  const lines = after.split(/\r?\n/);
  for (const line of before.split(/\r?\n/)) {
    const found = lines.indexOf(line, at);
    expect(found, `line ${JSON.stringify(line)} kept in order`).toBeGreaterThanOrEqual(at);
    at = found + 1;
  }
}

describe("mergeCompose", () => {
  test.each([
    ["two-space block style", "services:\n  app:\n    image: busybox\n"],
    ["four spaces, unindented sequences, comments", "# top\nservices:\n    app:   # trailing\n        image: busybox\n        ports:\n        - 80:80\n\n# tail comment\n"],
    ["no final newline", "services:\n  app:\n    image: busybox"],
    ["flow-style service", "services:\n  app: {image: busybox, ports: ['80:80']}\n"],
    ["empty services", "services:\n"],
    ["version key and anchors", 'version: "3.8"\nx-base: &base\n  restart: always\nservices:\n  app:\n    <<: *base\n    image: busybox\n'],
    ["CRLF line endings", "services:\r\n  app:\r\n    image: busybox\r\n"],
    ["existing volumes and networks", "services:\n  app:\n    image: busybox\nvolumes:\n  data:\nnetworks:\n  front: {}\n"],
  ])("%s: adds the service and volume, keeps user lines, is idempotent", (_name, input) => {
    const out = merge(input);
    const data = parse(out) as { services: Record<string, { image?: string }>; volumes: Record<string, unknown> };
    expect(data.services["mirror-kit"]?.image).toBe("ghcr.io/mirror-kit/mirror-kit:0.1.0");
    expect(data.volumes).toHaveProperty("mirror-kit-data");
    if (!input.includes("{image")) expectLinesKept(input.replace(/\r?\n$/, ""), out);
    expect(merge(out)).toBe(out);
    if (input.includes("\r\n")) expect(out.replace(/\r\n/g, "")).not.toContain("\n");
  });

  test("keeps version: as written (Compose v1 needs it for old formats)", () => {
    expect(merge('version: "2.4"\nservices:\n  app:\n    image: busybox\n')).toMatch(/^version: "2.4"\n/);
  });

  test.each([
    ["docker:dind image", "  ci:\n    image: docker:27-dind\n", ["host.docker.internal:host-gateway"]],
    ["privileged service running dockerd", "  ci:\n    image: debian\n    privileged: true\n    command: dockerd --host=unix:///run/docker.sock\n", ["host.docker.internal:host-gateway"]],
    ["list extra_hosts", '  ci:\n    image: docker:dind\n    extra_hosts:\n      - "a:10.0.0.1"\n', ["a:10.0.0.1", "host.docker.internal:host-gateway"]],
    ["flow list extra_hosts", '  ci:\n    image: docker:dind\n    extra_hosts: ["a:10.0.0.1"]\n', ["a:10.0.0.1", "host.docker.internal:host-gateway"]],
    ["mapping extra_hosts", "  ci:\n    image: docker:dind\n    extra_hosts:\n      a: 10.0.0.1\n", { a: "10.0.0.1", "host.docker.internal": "host-gateway" }],
    ["already mapped", '  ci:\n    image: docker:dind\n    extra_hosts: ["host.docker.internal:host-gateway"]\n', ["host.docker.internal:host-gateway"]],
  ])("%s: extra_hosts gets host.docker.internal once", (_name, service, expected) => {
    const out = merge(`services:\n${service}`);
    expect((parse(out) as { services: { ci: { extra_hosts: unknown } } }).services.ci.extra_hosts).toEqual(expected);
    expect(merge(out)).toBe(out);
  });

  test("a plain service is not given extra_hosts", () => {
    const out = merge("services:\n  web:\n    image: nginx\n    privileged: true\n");
    expect((parse(out) as { services: { web: object } }).services.web).toEqual({ image: "nginx", privileged: true });
  });

  test("an empty file becomes the standalone fragment", () => {
    expect(merge("")).toContain("# mirror-kit: a pull-through cache");
  });

  test("an existing volume of the same name is kept as the user defined it", () => {
    const out = merge("services:\n  app:\n    image: busybox\nvolumes:\n  mirror-kit-data:\n    external: true\n");
    expect((parse(out) as { volumes: object }).volumes).toEqual({ "mirror-kit-data": { external: true } });
  });
});

describe("a service running its own Docker daemon is pointed at the mirror over the Compose network", () => {
  const MIRROR = "--registry-mirror=http://mirror-kit:5000";
  const INSECURE = "--insecure-registry=mirror-kit:5000";
  test.each([
    ["docker:dind without a command", "  ci:\n    image: docker:27-dind\n", [MIRROR, INSECURE]],
    ["dind flags as a block list", '  ci:\n    image: docker:dind\n    command:\n      - "--tls=false"\n', ["--tls=false", MIRROR, INSECURE]],
    ["dind flags as a flow list", '  ci:\n    image: docker:dind\n    command: ["--storage-driver=vfs"]\n', ["--storage-driver=vfs", MIRROR, INSECURE]],
    ["privileged dockerd as a string", "  ci:\n    image: debian\n    privileged: true\n    command: dockerd --host=unix:///run/docker.sock\n", ["dockerd", "--host=unix:///run/docker.sock", MIRROR, INSECURE]],
    ["on networks of its own: through the host's published port", "  ci:\n    image: docker:dind\n    networks: [build]\n", ["--registry-mirror=http://host.docker.internal:5000", "--insecure-registry=host.docker.internal:5000"]],
  ])("%s: the existing command is kept and the flags appended once", (_name, service, expected) => {
    const text = `services:\n${service}`;
    const out = merge(text);
    expectLinesKept(text.replace(/^    command: [^-\n].*\n/m, ""), out);
    expect((parse(out) as { services: { ci: { command: unknown } } }).services.ci.command).toEqual(expected);
    expect(merge(out)).toBe(out);
  });

  test("a command mirror-kit cannot extend is left alone", () => {
    const text = "services:\n  ci:\n    image: docker:dind\n    command: sh -c 'dockerd-entrypoint.sh --tls=false'\n";
    expect((parse(merge(text)) as { services: { ci: { command: unknown } } }).services.ci.command).toBe("sh -c 'dockerd-entrypoint.sh --tls=false'");
  });
});

describe("init --prefetch: the prefetch step as a Compose service", () => {
  type Svc = { image?: string; command?: string[]; volumes?: string[]; depends_on?: Record<string, { condition: string }>; restart?: string };
  const services = (text: string) => (parse(text) as { services: Record<string, Svc> }).services;

  test("runs mirror-kit prefetch in the mirror's image on the project, read-only, once the mirror is healthy; idempotent", () => {
    const input = "services:\n  app:\n    image: busybox\n";
    const out = mergeCompose(input, "compose.yaml", s, false, "/work/project", "/work/project");
    expect(services(out)["mirror-kit-prefetch"]).toEqual({
      image: "ghcr.io/mirror-kit/mirror-kit:0.1.0",
      command: ["prefetch", "--mirror", "http://mirror-kit:5000", "/project"],
      volumes: [".:/project:ro"],
      depends_on: { "mirror-kit": { condition: "service_healthy" } },
      restart: "no",
    });
    expectLinesKept(input.replace(/\n$/, ""), out);
    expect(mergeCompose(out, "compose.yaml", s, false, "/work/project", "/work/project")).toBe(out);
    // Without --prefetch the service is neither added nor taken away.
    expect(services(merge(input))).not.toHaveProperty("mirror-kit-prefetch");
    expect(merge(out)).toBe(out);
  });

  test("with --ca it reaches the mirror over https and trusts the CA, mounted read-only", () => {
    const tls = resolveSettings({ ca: join(REPO, "test/generate/tls-fixture") });
    const svc = services(mergeCompose("services:\n  app:\n    image: busybox\n", "compose.yaml", tls, false, join(REPO, "test/generate"), join(REPO, "test/generate")))["mirror-kit-prefetch"]!;
    expect(svc.command).toEqual(["prefetch", "--mirror", "https://mirror-kit:5000", "--ca", "/etc/mirror-kit/ca.crt", "/project"]);
    expect(svc.volumes).toEqual([".:/project:ro", "./tls-fixture/ca.crt:/etc/mirror-kit/ca.crt:ro"]);
  });
});
