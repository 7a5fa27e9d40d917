// Fails loudly, naming the missing piece, when a real-parts suite cannot run here:
// these suites are never skipped, so a machine without the tools is a red build, not a green one.
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

/** What to install for each tool the suites use (Debian 12 packages, as .ci/run installs them). */
const PACKAGE_OF: Record<string, string> = {
  dockerd: "docker.io",
  docker: "docker.io",
  ctr: "containerd (pulled in by docker.io)",
  "docker-registry": "docker-registry",
  radosgw: "radosgw (apt-get install --no-install-recommends ceph-mon ceph-osd radosgw ceph-common)",
  "ceph-mon": "ceph-mon",
  "ceph-osd": "ceph-osd",
  skopeo: "skopeo",
  busybox: "busybox-static",
  tar: "tar",
  perl: "perl-base",
  buildah: "buildah (apt-get install --no-install-recommends buildah)",
  podman: "podman (apt-get install --no-install-recommends podman)",
  ip: "iproute2",
  containerd: "containerd (pulled in by docker.io)",
  openssl: "openssl",
  curl: "curl",
  htpasswd: "apache2-utils (apt-get install --no-install-recommends apache2-utils)",
  tinyproxy: "tinyproxy (apt-get install --no-install-recommends tinyproxy)",
  chromium: "chromium (apt-get install --no-install-recommends chromium)",
  "redis-server": "redis-server (apt-get install --no-install-recommends redis-server)",
  haproxy: "haproxy (apt-get install --no-install-recommends haproxy)",
  "docker-compose": "docker-compose",
  setpriv: "util-linux",
};

export function which(tool: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const candidate = join(dir, tool);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this PATH entry
    }
  }
  return undefined;
}

/** Throws one error listing every missing tool and whether root is missing. */
export function requireTools(tools: readonly string[], opts: { root?: boolean } = {}): void {
  const problems: string[] = [];
  for (const tool of tools) {
    if (!which(tool)) problems.push(`\`${tool}\` not on PATH (Debian package: ${PACKAGE_OF[tool] ?? tool})`);
  }
  if (opts.root && process.getuid?.() !== 0) {
    problems.push("must run as root (a private dockerd needs it); run the suite as root, as .ci/run does");
  }
  if (problems.length > 0) {
    throw new Error(`real-client suite cannot run on this machine:\n  - ${problems.join("\n  - ")}`);
  }
}
