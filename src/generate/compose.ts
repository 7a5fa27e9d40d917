// Merges the mirror-kit service (and its volume) into a user's Compose file, and gives services that
// run their own dockerd a way to reach the host; user text outside the edited spots stays byte-exact.
import { isDeepStrictEqual } from "node:util";
import { Document, isMap, Pair, Scalar, YAMLMap, type Node } from "yaml";
import { composeSource, PREFETCH_SERVICE, renderComposeFragment, SERVICE_NAME } from "./compose-view.js";
import { caMount, daemonCaTarget, daemonMirrorUrl, mirrorFlags, mountCa, mountsAt, planDaemonWiring, wireDaemonCommand } from "./compose-dind.js";
import { GenerateError } from "./errors.js";
import { seal, stampState, STAMP_PLACEHOLDER } from "./render.js";
import { DOCKER_HOST_ALIAS, type Settings } from "./settings.js";
import { requireCoverage } from "./tls-material.js";
import * as Y from "./yaml-edit.js";

export const COMPOSE_FILE_NAMES = ["compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"];
const HOST_GATEWAY_ENTRY = `${DOCKER_HOST_ALIAS}:host-gateway`;

type Js = Record<string, unknown>;

/**
 * Returns the new text of the Compose file (equal to `text` when nothing needs to change). `composeDir`
 * is the file's folder: host paths it mounts (the TLS files of --ca) are written relative to it.
 */
export function mergeCompose(text: string, display: string, s: Settings, force: boolean, composeDir?: string, prefetchProject?: string): string {
  // Windows line endings: merge on \n and put the user's endings back.
  if (text.includes("\r\n")) return mergeCompose(text.replace(/\r\n/g, "\n"), display, s, force, composeDir, prefetchProject).replace(/\n/g, "\r\n");
  const fragment = renderComposeFragment(s, composeDir, prefetchProject);
  if (text.trim() === "") return fragment;
  const original = Y.parseYaml(text, display);
  checkShape(original, display);
  const layout = Y.detectLayout(text);
  const fragDoc = Y.parseYaml(fragment, "compose fragment");
  const ours = [SERVICE_NAME, PREFETCH_SERVICE].filter((name) => fragDoc.hasIn(["services", name]));
  const volumeName = s.storage.kind === "volume" ? s.storage.name : null;

  let out = text;
  for (const name of ours) out = upsertService(out, display, name, fragDoc.getIn(["services", name], true) as Node, layout, force);
  if (volumeName) out = ensureVolume(out, display, volumeName, layout);
  for (const name of dockerDaemonServices(Y.parseYaml(out, display))) out = ensureHostGateway(out, display, name, layout);
  const wirings = daemonWirings(original, s);
  for (const [name, wiring] of wirings) out = wireDaemonCommand(out, display, name, wiring, layout);
  const caMounts = daemonCaMounts(Y.parseYaml(out, display), s, composeDir);
  for (const [name, mount] of caMounts) out = mountCa(out, display, name, mount, layout);

  // Prove the splices did exactly what was meant: same data as the original plus our additions.
  const expected = original.toJS() as Js;
  applyExpected(expected, fragDoc.toJS() as Js, ours, volumeName, dockerDaemonServices(original));
  for (const [name, wiring] of wirings) ((expected.services as Record<string, Js>)[name]!).command = wiring.command;
  for (const [name, mount] of caMounts) {
    const svc = (expected.services as Record<string, Js>)[name]!;
    svc.volumes = [...((svc.volumes as unknown[] | null | undefined) ?? []), mount];
  }
  const actual = Y.parseYaml(out, display).toJS() as Js;
  if (!isDeepStrictEqual(actual, expected)) {
    throw new GenerateError("BAD_INPUT", "could not merge the mirror-kit service without changing other content; add it by hand from plugins/compose/compose.mirror-kit.yaml", display);
  }
  return out;
}

function checkShape(doc: Document.Parsed, display: string): void {
  const root = doc.contents;
  if (!isMap(root)) throw new GenerateError("BAD_INPUT", "expected a mapping with services: at the top level", display);
  const services = root.get("services", true);
  if (services === undefined) {
    const looksV1 = root.items.some((p) => isMap(p.value) && (p.value.has("image") || p.value.has("build")));
    if (looksV1) throw new GenerateError("BAD_INPUT", "Compose file format 1 (services at the top level) is not supported; move them under services:", display);
  } else if (!isMap(services) && !(services instanceof Scalar && services.value === null)) {
    throw new GenerateError("BAD_INPUT", "services: must be a mapping of service names to services", display);
  }
  const volumes = root.get("volumes", true);
  if (volumes !== undefined && !isMap(volumes) && !(volumes instanceof Scalar && volumes.value === null)) {
    throw new GenerateError("BAD_INPUT", "volumes: must be a mapping of volume names", display);
  }
}

function upsertService(text: string, display: string, name: string, ours: Node, layout: Y.Layout, force: boolean): string {
  const doc = Y.parseYaml(text, display);
  const services = doc.get("services", true);
  if (!Y.isBlockMap(services)) return viaDocument(doc, ["services", name], ours, layout);
  const keyCol = Y.column(text, (services.items[0]!.key as Node).range![0]);
  const prefix = " ".repeat(keyCol);
  const block = seal(`${prefix}# managed by mirror-kit init; ${STAMP_PLACEHOLDER}\n${Y.renderPair(new Pair(name, ours), layout, prefix)}`);
  const existing = services.items.find((p) => Y.scalarString(p.key) === name);
  if (!existing) {
    // Follow the file's habit of a blank line between services.
    const second = services.items[1]?.key as Node | undefined;
    const spaced = second ? /\n[ \t]*\n/.test(text.slice((services.items[0]!.key as Node).range![0], Y.lineStart(text, second.range![0]))) : false;
    return Y.insertAt(text, Y.endOfCollection(text, services)!, (spaced ? "\n" : "") + block);
  }

  const keyStart = Y.lineStart(text, (existing.key as Node).range![0]);
  const prevStart = Y.lineStart(text, keyStart - 1);
  const start = keyStart > 0 && text.slice(prevStart, keyStart).includes("mirror-kit-sha256:") ? prevStart : keyStart;
  const valueEnd = (existing.value as Node | null)?.range?.[1] ?? (existing.key as Node).range![1];
  const end = Y.afterLine(text, valueEnd);
  const current = text.slice(start, end);
  if (current === block) return text;
  const sameData = isDeepStrictEqual((existing.value as Node).toJSON(), ours.toJSON());
  if (stampState(current) !== "intact" && !force) {
    if (sameData) return text; // hand-written but equivalent: leave the user's spelling alone
    throw new GenerateError("USER_EDITED", `service ${name} was changed by hand; keep it, or rerun with --force to replace it`, display);
  }
  return text.slice(0, start) + block + text.slice(end);
}

function ensureVolume(text: string, display: string, name: string, layout: Y.Layout): string {
  const doc = Y.parseYaml(text, display);
  const volumes = doc.get("volumes", true);
  if (isMap(volumes) && volumes.has(name)) return text;
  const empty = new YAMLMap();
  empty.flow = true;
  if (volumes === undefined) {
    return Y.insertAt(text, text.length, Y.renderPair(new Pair("volumes", pairMap(name, empty)), layout, ""));
  }
  if (!Y.isBlockMap(volumes)) return viaDocument(doc, ["volumes", name], empty, layout);
  const prefix = " ".repeat(Y.column(text, (volumes.items[0]!.key as Node).range![0]));
  return Y.insertAt(text, Y.endOfCollection(text, volumes)!, Y.renderPair(new Pair(name, empty), layout, prefix));
}

/** extra_hosts host.docker.internal:host-gateway lets a nested dockerd reach the mirror on the host. */
function ensureHostGateway(text: string, display: string, service: string, layout: Y.Layout): string {
  const doc = Y.parseYaml(text, display);
  const svc = doc.getIn(["services", service], true);
  if (!Y.isBlockMap(svc)) return hostGatewayViaDocument(doc, display, service, (svc as Node | null)?.toJSON()?.extra_hosts, layout);
  const hosts = svc.get("extra_hosts", true);
  const quoted = new Scalar(HOST_GATEWAY_ENTRY);
  quoted.type = Scalar.QUOTE_DOUBLE;
  if (hosts === undefined) {
    const prefix = " ".repeat(Y.column(text, (svc.items[0]!.key as Node).range![0]));
    return Y.insertAt(text, Y.endOfCollection(text, svc)!, Y.renderPair(new Pair("extra_hosts", [quoted]), layout, prefix));
  }
  if (Y.isBlockSeq(hosts)) {
    const first = hosts.items[0] as Node;
    const prefix = " ".repeat(Y.column(text, first.range![0]) - 2);
    return Y.insertAt(text, Y.endOfCollection(text, hosts)!, `${prefix}- "${HOST_GATEWAY_ENTRY}"\n`);
  }
  if (Y.isBlockMap(hosts)) {
    const prefix = " ".repeat(Y.column(text, (hosts.items[0]!.key as Node).range![0]));
    return Y.insertAt(text, Y.endOfCollection(text, hosts)!, `${prefix}${DOCKER_HOST_ALIAS}: host-gateway\n`);
  }
  return hostGatewayViaDocument(doc, display, service, (hosts as Node).toJSON(), layout);
}

function hostGatewayViaDocument(doc: Document.Parsed, display: string, service: string, js: unknown, layout: Y.Layout): string {
  const path = ["services", service, "extra_hosts"];
  if (js === null || js === undefined) return viaDocument(doc, path, [HOST_GATEWAY_ENTRY], layout);
  if (Array.isArray(js)) return viaDocument(doc, path, [...js, HOST_GATEWAY_ENTRY], layout);
  if (typeof js === "object") return viaDocument(doc, [...path, DOCKER_HOST_ALIAS], "host-gateway", layout);
  throw new GenerateError("BAD_INPUT", `services.${service}.extra_hosts must be a list or a mapping`, display);
}

/** Daemon services whose command gets the mirror flags (not yet wired, and a command we can extend). */
function daemonWirings(doc: Document.Parsed, s: Settings): [string, Extract<ReturnType<typeof planDaemonWiring>, { kind: "flags" }>][] {
  return daemonServices(doc).flatMap(([name, svc]) => {
    const wiring = planDaemonWiring(svc, s);
    return wiring.kind === "flags" ? [[name, wiring] as [string, typeof wiring]] : [];
  });
}

/**
 * With --ca, each daemon that pulls from our https URL gets the CA mounted where its dockerd looks, once;
 * the certificate must name the host that daemon uses (the service name, or the host's alias).
 */
function daemonCaMounts(doc: Document.Parsed, s: Settings, composeDir?: string): [string, Js][] {
  if (!s.ca) return [];
  const ca = s.ca;
  return daemonServices(doc).flatMap(([name, svc]) => {
    const url = daemonMirrorUrl(svc, s);
    const command = Array.isArray(svc.command) ? svc.command : [];
    if (!command.includes(`--registry-mirror=${url}`)) return [];
    requireCoverage(ca, new URL(url).hostname, `the Docker daemon of Compose service ${name} would`);
    const target = daemonCaTarget(svc, s);
    return mountsAt(svc, target) ? [] : [[name, caMount(composeSource(ca.file, composeDir), target)] as [string, Js]];
  });
}

/** What init tells the user about each daemon service: wired over the network, or what to do by hand. */
export function daemonNotes(text: string, display: string, s: Settings): string[] {
  if (text.trim() === "") return [];
  const doc = Y.parseYaml(text.replace(/\r\n/g, "\n"), display);
  return daemonServices(doc).map(([name, svc]) => {
    const wiring = planDaemonWiring(svc, s);
    if (wiring.kind === "manual") {
      const ca = s.ca ? `, and mount ${s.ca.file} read-only at ${daemonCaTarget(svc, s)}` : "";
      return `${display}: service ${name} runs its own Docker daemon, but ${wiring.why}; add ${mirrorFlags(daemonMirrorUrl(svc, s)).join(" ")} to its dockerd by hand${ca}`;
    }
    return `${display}: service ${name} runs its own Docker daemon; it pulls through the mirror (${wiring.kind === "flags" ? wiring.flags[0] : "--registry-mirror already set"})`;
  });
}

/** Every service other than ours that runs its own Docker daemon, with its definition. */
function daemonServices(doc: Document.Parsed): [string, Js][] {
  const services = (doc.toJS() as Js | null)?.services;
  if (!services || typeof services !== "object") return [];
  return Object.entries(services as Record<string, Js | null>).filter((e): e is [string, Js] => e[0] !== SERVICE_NAME && !!e[1] && runsDockerDaemon(e[1]));
}

/** Daemon services that cannot reach the host yet (no host.docker.internal in extra_hosts). */
function dockerDaemonServices(doc: Document.Parsed): string[] {
  return daemonServices(doc)
    .filter(([, svc]) => !hasHostGateway(svc.extra_hosts))
    .map(([name]) => name);
}

function runsDockerDaemon(svc: Js): boolean {
  const image = typeof svc.image === "string" ? svc.image.toLowerCase() : "";
  const command = JSON.stringify([svc.command ?? null, svc.entrypoint ?? null]);
  return image.includes("dind") || (svc.privileged === true && /\bdockerd\b/.test(command));
}

function hasHostGateway(extraHosts: unknown): boolean {
  if (Array.isArray(extraHosts)) return extraHosts.some((h) => typeof h === "string" && /^host\.docker\.internal[:=]/.test(h));
  return !!extraHosts && typeof extraHosts === "object" && DOCKER_HOST_ALIAS in extraHosts;
}

function applyExpected(expected: Js, fragment: Js, ours: readonly string[], volumeName: string | null, daemons: string[]): void {
  const services = (expected.services ??= {}) as Record<string, Js>;
  for (const name of ours) services[name] = (fragment.services as Js)[name] as Js;
  if (volumeName) {
    const volumes = (expected.volumes ??= {}) as Js;
    if (!(volumeName in volumes)) volumes[volumeName] = {};
  }
  for (const name of daemons) {
    const svc = services[name]!;
    if (svc.extra_hosts && !Array.isArray(svc.extra_hosts)) (svc.extra_hosts as Js)[DOCKER_HOST_ALIAS] = "host-gateway";
    else svc.extra_hosts = [...((svc.extra_hosts as string[] | null) ?? []), HOST_GATEWAY_ENTRY];
  }
}

/** Fallback for flow-style or empty collections: edit through the Document (formatting may normalise). */
function viaDocument(doc: Document.Parsed, path: string[], value: unknown, layout: Y.Layout): string {
  const top = path[0]!;
  const current = doc.get(top, true);
  if (current === undefined || (current instanceof Scalar && current.value === null)) doc.set(top, new YAMLMap());
  doc.setIn(path, value);
  return doc.toString(Y.stringifyOptions(layout));
}

function pairMap(key: string, value: unknown): YAMLMap {
  const map = new YAMLMap();
  map.items.push(new Pair(key, value));
  return map;
}
