// Editing devcontainer.json (JSONC): the Feature reference and the host-gateway run arg are added
// once, by splicing text, so comments, trailing commas, tabs and line endings stay as the user wrote them.
import { describe, expect, test } from "vitest";
import { editDevcontainerJson, engineFeaturesUsed, parseJsonc } from "../../src/generate/devcontainer.js";
import { resolveSettings } from "../../src/generate/settings.js";

const s = resolveSettings({});
const edit = (text: string) => editDevcontainerJson(text, "devcontainer.json", s, false);

describe("editDevcontainerJson", () => {
  test.each([
    ["no features, no runArgs", '{\n  "image": "debian"\n}\n', '{\n  "image": "debian",\n  "features": { /* mirror-kit-options:44136fa355b3 */ "./mirror-kit": {} },\n  "runArgs": ["--add-host=host.docker.internal:host-gateway"]\n}\n'],
    ["empty features object", '{\n  "image": "debian",\n  "features": {}\n}', '{\n  "image": "debian",\n  "features": {\n    /* mirror-kit-options:44136fa355b3 */ "./mirror-kit": {}\n  },\n  "runArgs": ["--add-host=host.docker.internal:host-gateway"]\n}'],
    ["run arg given as two elements", '{ "image": "d", "runArgs": ["--add-host", "host.docker.internal:host-gateway"], "features": {} }', null],
    ["CRLF and a trailing comma", '{\r\n  // c\r\n  "image": "d",\r\n  "runArgs": [\r\n    "--init",\r\n  ],\r\n}\r\n', '{\r\n  // c\r\n  "image": "d",\r\n  "runArgs": [\r\n    "--init",\r\n    "--add-host=host.docker.internal:host-gateway",\r\n  ],\r\n  "features": { /* mirror-kit-options:44136fa355b3 */ "./mirror-kit": {} },\r\n}\r\n'],
  ])("%s", (_name, input, expected) => {
    const { text } = edit(input);
    if (expected !== null) expect(text).toBe(expected);
    const data = parseJsonc(text, "x") as { features: Record<string, unknown>; runArgs: string[] };
    expect(data.features["./mirror-kit"]).toEqual({});
    expect(data.runArgs.filter((a) => a.includes("host.docker.internal"))).toHaveLength(1);
    expect(edit(text).text).toBe(text);
  });

  test("a Compose-based devcontainer gets no runArgs (they do not apply) and a note instead", () => {
    const { text, notes } = edit('{ "dockerComposeFile": "compose.yaml", "service": "app" }');
    expect(parseJsonc(text, "x")).toEqual({ dockerComposeFile: "compose.yaml", service: "app", features: { "./mirror-kit": {} } });
    expect(notes.join("\n")).toContain('extra_hosts: ["host.docker.internal:host-gateway"]');
  });

  test("a non-default port travels as the Feature's mirrorUrl option", () => {
    const { text } = editDevcontainerJson('{ "image": "d" }', "devcontainer.json", resolveSettings({ port: 5050 }), false);
    expect(text).toContain('"./mirror-kit": { "mirrorUrl": "http://host.docker.internal:5050" }');
  });

  test("its own earlier options are updated when the settings change; options edited by hand are refused", () => {
    const first = editDevcontainerJson('{ "image": "d" }', "devcontainer.json", resolveSettings({ port: 5050 }), false).text;
    const second = editDevcontainerJson(first, "devcontainer.json", resolveSettings({ host: "10.1.2.3" }), false).text;
    expect(parseJsonc(second, "x").features).toEqual({ "./mirror-kit": { mirrorUrl: "http://10.1.2.3:5000" } });
    expect(second.match(/mirror-kit-options:/g)).toHaveLength(1);
    const back = editDevcontainerJson(second, "devcontainer.json", s, false).text;
    expect(parseJsonc(back, "x").features).toEqual({ "./mirror-kit": {} });
    const handEdited = second.replace("http://10.1.2.3:5000", "http://10.9.9.9:5000");
    expect(() => editDevcontainerJson(handEdited, "devcontainer.json", s, false)).toThrow(/features\["\.\/mirror-kit"\] is \{"mirrorUrl":"http:\/\/10\.9\.9\.9:5000"\}/);
  });

  test("an entry without a record is ours only if it is the default {} an earlier version wrote", () => {
    const legacy = '{ "image": "d", "features": { "./mirror-kit": {} }, "runArgs": ["--add-host=host.docker.internal:host-gateway"] }';
    expect(parseJsonc(editDevcontainerJson(legacy, "devcontainer.json", resolveSettings({ port: 6000 }), false).text, "x").features).toEqual({
      "./mirror-kit": { mirrorUrl: "http://host.docker.internal:6000" },
    });
    const written = legacy.replace("{}", '{ "mirrorUrl": "http://h:1" }');
    expect(() => editDevcontainerJson(written, "devcontainer.json", s, false)).toThrow(/USER_EDITED|changed|is \{"mirrorUrl"/);
  });
});

describe("engine Features the generated Feature installs after", () => {
  test.each([
    ["none", undefined, []],
    ["other Features only", { "ghcr.io/devcontainers/features/node:1": {} }, []],
    ["docker-in-docker with a major version", { "ghcr.io/devcontainers/features/docker-in-docker:2": {} }, ["ghcr.io/devcontainers/features/docker-in-docker"]],
    ["docker-in-docker unversioned", { "ghcr.io/devcontainers/features/docker-in-docker": {} }, ["ghcr.io/devcontainers/features/docker-in-docker"]],
    ["docker-in-docker by digest", { [`ghcr.io/devcontainers/features/docker-in-docker@sha256:${"a".repeat(64)}`]: {} }, ["ghcr.io/devcontainers/features/docker-in-docker"]],
    ["docker-outside-of-docker (no engine inside)", { "ghcr.io/devcontainers/features/docker-outside-of-docker:1": {} }, []],
    ["a look-alike on another registry", { "localhost:5000/devcontainers/features/docker-in-docker:2": {} }, []],
  ])("%s", (_name, features, expected) => {
    expect(engineFeaturesUsed(features)).toEqual(expected);
  });
});
