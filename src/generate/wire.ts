// `mirror-kit wire CLIENT`: the host-side configuration for docker, containerd, podman, buildkit and
// k3s, merged into what is there with the same rules as the VM script; printed, or applied with a backup.
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { isMap, isSeq } from "yaml";
import { GenerateError, lineCol } from "./errors.js";
import { planGeneratedFile, readIfExists, type FileChange } from "./files.js";
import { render, seal, stampState, STAMP_PLACEHOLDER } from "./render.js";
import { hostMirrorUrl, mirrorHostPort, mirrorLocation, type Settings } from "./settings.js";
import { parseYaml } from "./yaml-edit.js";
import { caChanges, caPath } from "./ca-install.js";
import { ensureConfigPath } from "./containerd-config.js";

export const WIRE_CLIENTS = ["docker", "containerd", "podman", "buildkit", "k3s"] as const;
export type WireClient = (typeof WIRE_CLIENTS)[number];

export interface WirePlan {
  changes: FileChange[];
  /** What to run afterwards for the daemon to pick the change up. */
  reload: string;
}

/**
 * The URL a client reaches the mirror on. The host's own dockerd, containerd and podman can use the
 * loopback address; BuildKit runs in a builder container and k3s on other nodes, where 127.0.0.1 is
 * themselves, so they get this machine's LAN address, or --host / --mirror-url when there is none.
 */
function clientUrl(client: WireClient, s: Settings, lanAddress: () => string | undefined): string {
  if (client !== "buildkit" && client !== "k3s") return hostMirrorUrl(s);
  if (s.mirrorUrl !== undefined || s.host !== undefined) return hostMirrorUrl(s);
  const lan = lanAddress();
  if (!lan) {
    throw new GenerateError("BAD_OPTION", `wire ${client}: cannot detect this machine's LAN address (no default route), and 127.0.0.1 would not reach the mirror from ${client === "k3s" ? "other nodes" : "a builder container"}; pass --host ADDRESS`);
  }
  return hostMirrorUrl({ ...s, host: lan });
}

export function planWire(client: WireClient, s: Settings, root: string, force: boolean, lanAddress: () => string | undefined = () => undefined): WirePlan {
  const url = clientUrl(client, s, lanAddress);
  const plan = planClient(client, s, url, root, force);
  // The CA first: a daemon that reloads on the config change must already find it.
  return { ...plan, changes: [...caChanges(client, s, url, root), ...plan.changes] };
}

function planClient(client: WireClient, s: Settings, url: string, root: string, force: boolean): WirePlan {
  const at = (p: string) => ({ path: join(root, p), display: p });
  switch (client) {
    case "docker":
      return { changes: dockerDaemonJson(at("/etc/docker/daemon.json"), at(DOCKER_RECORD), url), reload: "sudo systemctl reload docker   # or: sudo kill -HUP $(pidof dockerd)" };
    case "containerd":
      return { changes: containerd(root, s, url, force), reload: "sudo systemctl restart containerd   # only if config.toml changed; hosts.toml is read live" };
    case "podman":
      return { changes: [podman(at("/etc/containers/registries.conf.d/50-mirror-kit.conf"), s, url, force)], reload: "nothing to reload: podman reads it on every pull" };
    case "buildkit":
      return { changes: [buildkit(at("/etc/buildkit/buildkitd.toml"), s, url, force)], reload: "restart buildkitd, or: docker buildx create --driver docker-container --config /etc/buildkit/buildkitd.toml" };
    case "k3s":
      return { changes: [k3s(at("/etc/rancher/k3s/registries.yaml"), s, url)], reload: "sudo systemctl restart k3s   # on every node (k3s-agent on agents)" };
  }
}

function upstreamServer(name: string, url: string, custom: boolean): string {
  // Omitted means registry-1.docker.io; "https://docker.io" would be taken literally.
  return name === "docker.io" && !custom ? "" : url;
}

/** What the last `wire docker --apply` added to daemon.json (JSON holds no comments to mark it there). */
const DOCKER_RECORD = "/etc/docker/mirror-kit-wired.json";

interface DaemonEntries {
  "registry-mirrors": string[];
  "insecure-registries": string[];
}

function ourEntries(url: string): DaemonEntries {
  return { "registry-mirrors": [url], "insecure-registries": url.startsWith("http://") ? [mirrorHostPort(url)] : [] };
}

function readRecord(text: string | null): DaemonEntries {
  const empty: DaemonEntries = { "registry-mirrors": [], "insecure-registries": [] };
  if (!text) return empty;
  try {
    const data = JSON.parse(text) as Partial<DaemonEntries>;
    const list = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);
    return { "registry-mirrors": list(data["registry-mirrors"]), "insecure-registries": list(data["insecure-registries"]) };
  } catch {
    return empty; // a damaged record only means an old entry of ours is kept, never a user's removed
  }
}

/**
 * Keep every key; the mirror goes FIRST in registry-mirrors (dockerd tries them in order, so behind
 * another mirror it would rarely be asked), and what an earlier wire added (`previous`) is replaced.
 */
export function mergeDaemonJson(before: string | null, display: string, url: string, previous: DaemonEntries = readRecord(null)): string {
  let data: Record<string, unknown> = {};
  if (before !== null && before.trim() !== "") {
    try {
      data = JSON.parse(before) as Record<string, unknown>;
    } catch (err) {
      throw new GenerateError("BAD_INPUT", `not valid JSON (dockerd would not start with it): ${(err as Error).message}`, display);
    }
    if (data === null || typeof data !== "object" || Array.isArray(data)) throw new GenerateError("BAD_INPUT", "expected a JSON object", display);
  }
  const next = structuredClone(data);
  const list = (key: keyof DaemonEntries): unknown[] => {
    const value = next[key] ?? [];
    if (!Array.isArray(value)) throw new GenerateError("BAD_INPUT", `"${key}" must be an array`, display);
    return value;
  };
  const mirrors = list("registry-mirrors").filter((v) => v !== url && v !== `${url}/` && !previous["registry-mirrors"].includes(v as string));
  next["registry-mirrors"] = [url, ...mirrors];
  const wanted = ourEntries(url)["insecure-registries"];
  const insecure = list("insecure-registries").filter((v) => wanted.includes(v as string) || !previous["insecure-registries"].includes(v as string));
  for (const host of wanted) if (!insecure.includes(host)) insecure.push(host);
  if (insecure.length > 0 || "insecure-registries" in next) next["insecure-registries"] = insecure;
  if (before !== null && isDeepStrictEqual(next, data)) return before; // already wired: keep the user's formatting
  return `${JSON.stringify(next, null, 2)}\n`;
}

function dockerDaemonJson(f: { path: string; display: string }, record: { path: string; display: string }, url: string): FileChange[] {
  const before = readIfExists(f.path, f.display);
  const recordBefore = readIfExists(record.path, record.display);
  const after = mergeDaemonJson(before, f.display, url, readRecord(recordBefore));
  const ours = ourEntries(url);
  const added = { "registry-mirrors": ours["registry-mirrors"], ...(ours["insecure-registries"].length ? { "insecure-registries": ours["insecure-registries"] } : {}) };
  const recordAfter = `${JSON.stringify({ comment: "what mirror-kit wire docker added to daemon.json; a later wire replaces these", ...added }, null, 2)}\n`;
  return [
    { ...f, before, after },
    { ...record, before: recordBefore, after: recordBefore !== null && isDeepStrictEqual(readRecord(recordBefore), ourEntries(url)) ? recordBefore : recordAfter },
  ];
}

function containerd(root: string, s: Settings, url: string, force: boolean): FileChange[] {
  const changes = s.upstreams.map((u) => {
    const display = `/etc/containerd/certs.d/${u.name}/hosts.toml`;
    const content = seal(render("wire/hosts.toml", { upstream: u.name, server: upstreamServer(u.name, u.url, u.custom), mirrorUrl: url, ca: caPath("containerd", s, url), stamp: STAMP_PLACEHOLDER }));
    return planGeneratedFile(join(root, display), display, content, { force });
  });
  const display = "/etc/containerd/config.toml";
  const before = readIfExists(join(root, display), display);
  changes.push({ path: join(root, display), display, before, after: ensureConfigPath(before, display) });
  return changes;
}

function upstreamViews(s: Settings, url: string) {
  const loc = mirrorLocation(url);
  return s.upstreams.map((u) => ({
    name: u.name,
    nameYaml: JSON.stringify(u.name),
    location: u.name === "docker.io" && !u.custom ? "docker.io" : new URL(u.url).host,
    mirrorLocation: `${loc}/${u.name}`,
    mirrorUrl: url,
    insecure: url.startsWith("http://"),
  }));
}

function podman(f: { path: string; display: string }, s: Settings, url: string, force: boolean): FileChange {
  const content = seal(render("wire/registries.conf", { upstreams: upstreamViews(s, url), stamp: STAMP_PLACEHOLDER }));
  return planGeneratedFile(f.path, f.display, content, { force });
}

function buildkit(f: { path: string; display: string }, s: Settings, url: string, force: boolean): FileChange {
  // BuildKit sends ns= itself, so every registry uses the bare mirror host.
  const views = upstreamViews(s, url).map((u) => ({ ...u, mirrorLocation: mirrorLocation(url) }));
  const block = seal(render("wire/buildkitd.toml", { upstreams: views, mirrorHost: mirrorHostPort(url), http: url.startsWith("http://"), ca: caPath("buildkit", s, url), stamp: STAMP_PLACEHOLDER }));
  const before = readIfExists(f.path, f.display);
  const text = before ?? "";
  const begin = text.indexOf("# >>> mirror-kit >>>");
  const endMarker = "# <<< mirror-kit <<<\n";
  const end = text.indexOf(endMarker);
  const outside = begin >= 0 && end > begin ? text.slice(0, begin) + text.slice(end + endMarker.length) : text;
  for (const name of [...s.upstreams.map((u) => u.name), mirrorHostPort(url)]) {
    if (outside.includes(`[registry."${name}"]`)) {
      throw new GenerateError("CONFLICT", `already has a [registry."${name}"] section; TOML forbids a second one, so merge the mirror into it by hand`, f.display);
    }
  }
  if (begin < 0) return { ...f, before, after: `${text}${text && !text.endsWith("\n") ? "\n" : ""}${text ? "\n" : ""}${block}` };
  const current = text.slice(begin, end + endMarker.length);
  if (current !== block && stampState(current) !== "intact" && !force) {
    throw new GenerateError("USER_EDITED", "the mirror-kit block was changed by hand; rerun with --force to replace it", f.display);
  }
  return { ...f, before, after: text.slice(0, begin) + block + text.slice(end + endMarker.length) };
}

function k3s(f: { path: string; display: string }, s: Settings, url: string): FileChange {
  const ca = caPath("k3s", s, url);
  const fresh = render("wire/registries.yaml", { upstreams: upstreamViews(s, url), mirrorHostYaml: JSON.stringify(mirrorHostPort(url)), ca });
  const before = readIfExists(f.path, f.display);
  if (before === null || before.trim() === "") return { ...f, before, after: fresh };
  const doc = parseYaml(before, f.display);
  if (!isMap(doc.contents)) throw new GenerateError("BAD_INPUT", "expected a mapping with mirrors: at the top level", f.display);
  let changed = false;
  for (const u of s.upstreams) {
    const endpoint = doc.getIn(["mirrors", u.name, "endpoint"], true);
    if (endpoint === undefined) {
      doc.setIn(["mirrors", u.name, "endpoint"], doc.createNode([url]));
      changed = true;
    } else if (!isSeq(endpoint)) {
      const { line } = lineCol(before, (endpoint as { range?: [number] } | null)?.range?.[0] ?? 0);
      throw new GenerateError("BAD_INPUT", `mirrors."${u.name}".endpoint at line ${line} must be a list`, f.display);
    } else if (!endpoint.items.some((i) => (i as { value?: unknown }).value === url)) {
      // Endpoints are tried in order; ours goes first so pulls hit the cache before anything remote.
      endpoint.items.unshift(doc.createNode(url));
      changed = true;
    }
  }
  if (ca && doc.getIn(["configs", mirrorHostPort(url), "tls", "ca_file"]) !== ca) {
    doc.setIn(["configs", mirrorHostPort(url), "tls", "ca_file"], ca);
    changed = true;
  }
  return { ...f, before, after: changed ? doc.toString({ lineWidth: 0 }) : before };
}
