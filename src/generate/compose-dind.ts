// Points a Compose service's own Docker daemon (docker:dind and the like) at the mirror over the
// Compose network: --registry-mirror (plus --insecure-registry for plain HTTP) appended to its command,
// the rest kept; for a TLS mirror, the CA mounted where that dockerd looks (certs.d/HOST:PORT/ca.crt).
import { isSeq, Pair, Scalar, YAMLMap, YAMLSeq, type Document, type Node } from "yaml";
import { SERVICE_NAME } from "./compose-view.js";
import { GenerateError } from "./errors.js";
import { mirrorScheme, CONTAINER_PORT, DOCKER_HOST_ALIAS, type Settings } from "./settings.js";
import * as Y from "./yaml-edit.js";

type Js = Record<string, unknown>;

/** How a service's daemon is wired, decided from its parsed definition. */
export type DaemonWiring =
  /** replace: the command held the plain-HTTP flags of an earlier run, so it is rewritten, not appended to. */
  | { kind: "flags"; flags: string[]; command: unknown[]; replace?: true }
  | { kind: "done" }
  | { kind: "manual"; why: string };

/**
 * On the default network the mirror is `mirror-kit:5000`; a service on networks of its own may not
 * see it, so it goes through the host's published port instead (extra_hosts host-gateway).
 */
export function daemonMirrorUrl(svc: Js, s: Settings): string {
  const scheme = mirrorScheme(s);
  return svc.networks !== undefined || svc.network_mode !== undefined ? `${scheme}://${DOCKER_HOST_ALIAS}:${s.port}` : `${scheme}://${SERVICE_NAME}:${CONTAINER_PORT}`;
}

/** The flags a daemon gets: an https mirror is checked against the mounted CA, so it is never listed insecure. */
export function mirrorFlags(url: string): string[] {
  return url.startsWith("https://") ? [`--registry-mirror=${url}`] : [`--registry-mirror=${url}`, `--insecure-registry=${new URL(url).host}`];
}

/** Where the daemon's CA goes: dockerd reads /etc/docker/certs.d/HOST:PORT/ca.crt for that registry or mirror. */
export function daemonCaTarget(svc: Js, s: Settings): string {
  return `/etc/docker/certs.d/${new URL(daemonMirrorUrl(svc, s)).host}/ca.crt`;
}

export function planDaemonWiring(svc: Js, s: Settings): DaemonWiring {
  const url = daemonMirrorUrl(svc, s);
  const flags = mirrorFlags(url);
  const raw = svc.command;
  const parsed: unknown[] | null = raw === undefined || raw === null ? [] : Array.isArray(raw) ? raw : typeof raw === "string" && !/["'\\$]/.test(raw) ? raw.trim().split(/\s+/) : null;
  if (parsed === null) return { kind: "manual", why: "its command is a string with quotes or variables, which mirror-kit does not rewrite" };
  // A daemon an earlier init wired over plain HTTP moves to https when init now has --ca: exactly
  // those flags are replaced, anything else set by hand stays.
  const plain = mirrorFlags(url.replace(/^https:/, "http:"));
  const upgrade = url.startsWith("https://") && plain.every((f) => parsed.includes(f));
  const current = upgrade ? parsed.filter((a) => !plain.includes(a as string)) : parsed;
  if (current.some((a) => typeof a === "string" && a.startsWith("--registry-mirror"))) return { kind: "done" };
  // docker:dind's entrypoint passes arguments starting with "-" to dockerd; a command naming dockerd takes them too.
  const first = current[0];
  const image = typeof svc.image === "string" ? svc.image.toLowerCase() : "";
  const passesFlags = current.length === 0 ? image.includes("dind") : typeof first === "string" && (first.startsWith("-") || /(^|\/)dockerd$/.test(first));
  if (!passesFlags) return { kind: "manual", why: "its command does not start dockerd with arguments mirror-kit can extend" };
  return { kind: "flags", flags, command: [...current, ...flags], ...(upgrade ? { replace: true } : {}) };
}

/** Edits services.<name>.command in the text: appended lines for a block list, else a rewritten value. */
export function wireDaemonCommand(text: string, display: string, name: string, wiring: Extract<DaemonWiring, { kind: "flags" }>, layout: Y.Layout): string {
  const doc = Y.parseYaml(text, display);
  const svc = doc.getIn(["services", name], true);
  if (!Y.isBlockMap(svc)) return viaDocument(doc, name, wiring.command, layout);
  const command = svc.get("command", true) as Node | undefined;
  const flow = `[${wiring.command.map((a) => JSON.stringify(a)).join(", ")}]`;
  if (command === undefined) {
    const prefix = " ".repeat(Y.column(text, (svc.items[0]!.key as Node).range![0]));
    return Y.insertAt(text, Y.endOfCollection(text, svc)!, `${prefix}command: ${flow}\n`);
  }
  if (Y.isBlockSeq(command) && !wiring.replace) {
    const first = (command as YAMLSeq).items[0] as Node;
    const prefix = " ".repeat(Y.column(text, first.range![0]) - 2);
    return Y.insertAt(text, Y.endOfCollection(text, command as YAMLSeq)!, wiring.flags.map((f) => `${prefix}- "${f}"\n`).join(""));
  }
  if (Y.isBlockSeq(command)) {
    // A block list losing the plain-HTTP flags: the whole `command:` entry becomes one flow-list line.
    const key = svc.items.find((p) => Y.scalarString(p.key) === "command")!.key as Node;
    const start = Y.lineStart(text, key.range![0]);
    const last = command.items[command.items.length - 1] as Node;
    return `${text.slice(0, start)}${" ".repeat(Y.column(text, key.range![0]))}command: ${flow}\n${text.slice(Y.afterLine(text, last.range![1]))}`;
  }
  if (isSeq(command) || command instanceof Scalar) {
    // A flow list or a string: replace just that value, on its own line, as a flow list.
    const [start, end] = command.range!;
    return text.slice(0, start) + flow + text.slice(end);
  }
  throw new GenerateError("BAD_INPUT", `services.${name}.command must be a list or a string`, display);
}

function viaDocument(doc: Document.Parsed, name: string, command: unknown[], layout: Y.Layout): string {
  doc.setIn(["services", name, "command"], doc.createNode(command, { flow: true }));
  return doc.toString(Y.stringifyOptions(layout));
}

/** Whether the service already mounts something at `target` (short "SRC:DST[:ro]" or long syntax). */
export function mountsAt(svc: Js, target: string): boolean {
  const volumes = Array.isArray(svc.volumes) ? svc.volumes : [];
  return volumes.some((v) => (typeof v === "string" ? v.includes(`:${target}`) : !!v && typeof v === "object" && (v as Js).target === target));
}

/** The CA's mount, in long syntax: the short form splits on ":", which HOST:PORT in the target contains. */
export function caMount(source: string, target: string): Js {
  return { type: "bind", source, target, read_only: true };
}

/** Adds the CA mount to services.<name>.volumes in the text: an appended item for a block list, else through the Document. */
export function mountCa(text: string, display: string, name: string, mount: Js, layout: Y.Layout): string {
  const doc = Y.parseYaml(text, display);
  const svc = doc.getIn(["services", name], true);
  const node = doc.createNode(mount) as YAMLMap;
  for (const key of ["source", "target"]) {
    const value = new Scalar(mount[key]);
    value.type = Scalar.QUOTE_DOUBLE;
    node.set(key, value);
  }
  if (!Y.isBlockMap(svc)) return viaDocumentAppend(doc, name, node, layout, display);
  const volumes = svc.get("volumes", true) as Node | undefined;
  if (volumes === undefined) {
    const prefix = " ".repeat(Y.column(text, (svc.items[0]!.key as Node).range![0]));
    const seq = new YAMLSeq();
    seq.items.push(node);
    return Y.insertAt(text, Y.endOfCollection(text, svc)!, Y.renderPair(new Pair("volumes", seq), layout, prefix));
  }
  if (Y.isBlockSeq(volumes)) {
    const first = volumes.items[0] as Node;
    const col = Y.column(text, first.range![0]);
    // The item as block YAML, its first line after "- ", the rest under it.
    const lines = Y.renderPair(new Pair("x", node), { ...layout, indent: 2 }, "").split("\n").slice(1, -1).map((l) => l.slice(2));
    const item = lines.map((l, i) => (i === 0 ? `${" ".repeat(col - 2)}- ${l}` : `${" ".repeat(col)}${l}`)).join("\n");
    return Y.insertAt(text, Y.endOfCollection(text, volumes)!, `${item}\n`);
  }
  return viaDocumentAppend(doc, name, node, layout, display);
}

function viaDocumentAppend(doc: Document.Parsed, name: string, node: YAMLMap, layout: Y.Layout, display: string): string {
  const current = doc.getIn(["services", name, "volumes"]);
  if (current !== undefined && current !== null && !isSeq(current)) throw new GenerateError("BAD_INPUT", `services.${name}.volumes must be a list`, display);
  if (isSeq(current)) current.items.push(node);
  else doc.setIn(["services", name, "volumes"], doc.createNode([node]));
  return doc.toString(Y.stringifyOptions(layout));
}
