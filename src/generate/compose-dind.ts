// Points a Compose service's own Docker daemon (docker:dind and the like) at the mirror over the
// Compose network: --registry-mirror / --insecure-registry appended to its command, the rest kept.
import { isSeq, Scalar, type Document, type Node } from "yaml";
import { SERVICE_NAME } from "./compose-view.js";
import { GenerateError } from "./errors.js";
import { CONTAINER_PORT, DOCKER_HOST_ALIAS, type Settings } from "./settings.js";
import * as Y from "./yaml-edit.js";

type Js = Record<string, unknown>;

/** How a service's daemon is wired, decided from its parsed definition. */
export type DaemonWiring =
  | { kind: "flags"; flags: string[]; command: unknown[] }
  | { kind: "done" }
  | { kind: "manual"; why: string };

/**
 * On the default network the mirror is `mirror-kit:5000`; a service on networks of its own may not
 * see it, so it goes through the host's published port instead (extra_hosts host-gateway).
 */
export function daemonMirrorUrl(svc: Js, s: Settings): string {
  return svc.networks !== undefined || svc.network_mode !== undefined ? `http://${DOCKER_HOST_ALIAS}:${s.port}` : `http://${SERVICE_NAME}:${CONTAINER_PORT}`;
}

export function planDaemonWiring(svc: Js, s: Settings): DaemonWiring {
  const url = daemonMirrorUrl(svc, s);
  const flags = [`--registry-mirror=${url}`, `--insecure-registry=${new URL(url).host}`];
  const raw = svc.command;
  const current: unknown[] | null = raw === undefined || raw === null ? [] : Array.isArray(raw) ? raw : typeof raw === "string" && !/["'\\$]/.test(raw) ? raw.trim().split(/\s+/) : null;
  if (current === null) return { kind: "manual", why: "its command is a string with quotes or variables, which mirror-kit does not rewrite" };
  if (current.some((a) => typeof a === "string" && a.startsWith("--registry-mirror"))) return { kind: "done" };
  // docker:dind's entrypoint passes arguments starting with "-" to dockerd; a command naming dockerd takes them too.
  const first = current[0];
  const image = typeof svc.image === "string" ? svc.image.toLowerCase() : "";
  const passesFlags = current.length === 0 ? image.includes("dind") : typeof first === "string" && (first.startsWith("-") || /(^|\/)dockerd$/.test(first));
  if (!passesFlags) return { kind: "manual", why: "its command does not start dockerd with arguments mirror-kit can extend" };
  return { kind: "flags", flags, command: [...current, ...flags] };
}

/** Edits services.<name>.command in the text: appended lines for a block list, else a rewritten value. */
export function wireDaemonCommand(text: string, display: string, name: string, wiring: Extract<DaemonWiring, { kind: "flags" }>, layout: Y.Layout): string {
  const doc = Y.parseYaml(text, display);
  const svc = doc.getIn(["services", name], true);
  if (!Y.isBlockMap(svc)) return viaDocument(doc, name, wiring.command, layout);
  const command = svc.get("command", true) as Node | undefined;
  if (command === undefined) {
    const prefix = " ".repeat(Y.column(text, (svc.items[0]!.key as Node).range![0]));
    const flow = `command: [${wiring.command.map((a) => JSON.stringify(a)).join(", ")}]\n`;
    return Y.insertAt(text, Y.endOfCollection(text, svc)!, prefix + flow);
  }
  if (Y.isBlockSeq(command)) {
    const first = (command as import("yaml").YAMLSeq).items[0] as Node;
    const prefix = " ".repeat(Y.column(text, first.range![0]) - 2);
    return Y.insertAt(text, Y.endOfCollection(text, command as import("yaml").YAMLSeq)!, wiring.flags.map((f) => `${prefix}- "${f}"\n`).join(""));
  }
  if (isSeq(command) || command instanceof Scalar) {
    // A flow list or a string: replace just that value, on its own line, as a flow list.
    const [start, end] = command.range!;
    return text.slice(0, start) + `[${wiring.command.map((a) => JSON.stringify(a)).join(", ")}]` + text.slice(end);
  }
  throw new GenerateError("BAD_INPUT", `services.${name}.command must be a list or a string`, display);
}

function viaDocument(doc: Document.Parsed, name: string, command: unknown[], layout: Y.Layout): string {
  doc.setIn(["services", name, "command"], doc.createNode(command, { flow: true }));
  return doc.toString(Y.stringifyOptions(layout));
}
