// The Vagrant target: a marked provisioning block inside the Vagrant.configure block and the guest-side
// script it runs (.mirror-kit/provision.sh), both rendered from templates/vagrant/.
import { dirname, join, relative } from "node:path";
import { GenerateError } from "./errors.js";
import { planGeneratedFile, readIfExists, unlessEdited, type FileChange } from "./files.js";
import { packageVersion, render, seal, stampState, STAMP_PLACEHOLDER } from "./render.js";
import { mirrorScheme, vmMirrorUrl, type Settings } from "./settings.js";
import { requireCoverage } from "./tls-material.js";

export const SCRIPT_PATH = ".mirror-kit/provision.sh";
const BEGIN = "# >>> mirror-kit >>>";
const END = "# <<< mirror-kit <<<";
const CONFIGURE_RE = /^([ \t]*)Vagrant\.configure\(\s*["']2["']\s*\)\s*do\s*\|\s*(\w+)\s*\|/;

/** Containerd's server line and Podman's location for each upstream (values the template places). */
function upstreamViews(s: Settings): { name: string; server: string; location: string }[] {
  return s.upstreams.map((u) => ({
    name: u.name,
    // An omitted server means registry-1.docker.io; "https://docker.io" would be taken literally.
    server: u.name === "docker.io" && !u.custom ? "" : u.url,
    location: u.name === "docker.io" && !u.custom ? "docker.io" : new URL(u.url).host,
  }));
}

export function renderProvisionScript(s: Settings): string {
  return seal(render("vagrant/provision.sh", { stamp: STAMP_PLACEHOLDER, version: packageVersion(), port: s.port, upstreams: upstreamViews(s), scheme: mirrorScheme(s), caPem: s.ca?.pem.trimEnd() ?? "" }));
}

/** The marked block, indented for its place in the Vagrantfile and sealed with its own hash. */
export function renderSnippet(s: Settings, configVar: string, indent: string): string {
  const text = render("vagrant/mirror-kit.rb", {
    stamp: STAMP_PLACEHOLDER,
    version: packageVersion(),
    configVar,
    scriptPath: SCRIPT_PATH,
    mirrorUrl: vmMirrorUrl(s),
    port: s.port,
  });
  const indented = text
    .replace(/\n$/, "")
    .split("\n")
    .map((l) => (l ? indent + l : l))
    .join("\n");
  return seal(`${indented}\n`);
}

export function planVagrant(projectDir: string, file: string, s: Settings, force: boolean): FileChange[] {
  const display = relative(projectDir, file);
  const text = readIfExists(file, display);
  if (text === null) throw new GenerateError("NOT_FOUND", "does not exist", display);
  const url = vmMirrorUrl(s);
  // A detected host (no --host/--mirror-url) is known only inside the VM; a given one is checked now.
  if (url) requireCoverage(s.ca, new URL(url).hostname, "VMs");
  const script = join(dirname(file), SCRIPT_PATH);
  const scriptDisplay = relative(projectDir, script);
  return [
    unlessEdited(file, display, () => ({ path: file, display, before: text, after: editVagrantfile(text, display, s, force) })),
    unlessEdited(script, scriptDisplay, () => planGeneratedFile(script, scriptDisplay, renderProvisionScript(s), { force, mode: 0o755 })),
  ];
}

export function editVagrantfile(text: string, display: string, s: Settings, force: boolean): string {
  const lines = text.split("\n");
  const open = lines.findIndex((l) => CONFIGURE_RE.test(l));
  if (open < 0) throw new GenerateError("BAD_INPUT", `no Vagrant.configure("2") do |config| block found`, display);
  const [, outer = "", configVar = "config"] = CONFIGURE_RE.exec(lines[open]!)!;
  const close = matchingEnd(lines, open, outer, display);
  const inner = lines.slice(open + 1, close).find((l) => l.trim() !== "")?.match(/^[ \t]*/)?.[0];
  const indent = inner && inner.length > outer.length ? inner : `${outer}  `;
  const block = renderSnippet(s, configVar, indent);

  const begins = indexesOf(lines, BEGIN);
  const ends = indexesOf(lines, END);
  if (begins.length === 0 && ends.length === 0) {
    const at = insertionLine(lines, open, close, indent);
    const head = lines.slice(0, at);
    const needsGap = head.length > open + 1 && head[head.length - 1]!.trim() !== "";
    const gapAfter = at < close ? [""] : [];
    return [...head, ...(needsGap ? [""] : []), ...block.replace(/\n$/, "").split("\n"), ...gapAfter, ...lines.slice(at)].join("\n");
  }
  const [b, e] = [begins[0]!, ends[0]!];
  if (begins.length !== 1 || ends.length !== 1 || e < b || b < open || e > close) {
    throw new GenerateError("BAD_INPUT", `the "${BEGIN}" / "${END}" markers are damaged or outside Vagrant.configure; remove the mirror-kit block and rerun`, display);
  }
  const current = `${lines.slice(b, e + 1).join("\n")}\n`;
  if (current === block) return text;
  if (stampState(current) !== "intact" && !force) {
    throw new GenerateError("USER_EDITED", "the mirror-kit block was changed by hand; keep it, or rerun with --force to replace it", display);
  }
  return [...lines.slice(0, b), ...block.replace(/\n$/, "").split("\n"), ...lines.slice(e + 1)].join("\n");
}

/**
 * Vagrant runs provisioners in the order the file declares them (outer scope first), so the block goes
 * before the top-level statement holding the first provisioner, with that statement's comments: a
 * `docker` provisioner that pulls images must find the engine already wired. No provisioner: the end.
 */
function insertionLine(lines: string[], open: number, close: number, indent: string): number {
  const first = lines.findIndex((l, i) => i > open && i < close && /^\s*[^#\s].*\.vm\.provision\b/.test(l));
  if (first < 0) return close;
  const topLevel = (l: string): boolean => l.startsWith(indent) && l.length > indent.length && !/\s/.test(l[indent.length]!);
  let at = first;
  while (at > open + 1 && !topLevel(lines[at]!)) at--;
  while (at - 1 > open && /^\s*#/.test(lines[at - 1]!)) at--;
  return at;
}

function indexesOf(lines: string[], marker: string): number[] {
  return lines.flatMap((l, i) => (l.trim().startsWith(marker) ? [i] : []));
}

// Counts Ruby block openers and `end`s line by line. Not a Ruby parser, so the result must also sit at
// the configure line's indentation; otherwise we refuse rather than insert in the wrong place.
const OPENER_RE = /^\s*(if|unless|while|until|case|def|class|module|begin)\b|\bdo\s*(\|[^|]*\|)?\s*(#.*)?$/;
const END_RE = /^\s*end\b/;

function matchingEnd(lines: string[], open: number, outer: string, display: string): number {
  let depth = 0;
  let heredoc: string | null = null;
  for (let i = open; i < lines.length; i++) {
    const line = lines[i]!;
    if (heredoc) {
      if (line.trim() === heredoc) heredoc = null;
      continue;
    }
    const here = /<<[~-]?["']?(\w+)["']?/.exec(line.replace(/#.*$/, ""));
    if (here) heredoc = here[1]!;
    if (/^\s*#/.test(line)) continue;
    if (OPENER_RE.test(line)) depth++;
    if (END_RE.test(line)) {
      depth--;
      if (depth === 0) {
        if (line.match(/^[ \t]*/)![0] !== outer) break;
        return i;
      }
    }
  }
  throw new GenerateError("BAD_INPUT", `cannot find the "end" that closes Vagrant.configure (is the file valid Ruby?)`, display);
}
