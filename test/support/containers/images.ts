// Every image the end-to-end suites run, named in one place and built offline on the engine at
// DOCKER_HOST: a Node runtime, mirror-kit from the project's Dockerfile, distribution, a "VM".
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { cp, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stringify } from "yaml";
import { REPO_ROOT } from "./engine.js";
import type { DevcontainerFeature } from "./generated.js";
import type { E2eHarness } from "./harness.js";
import { ensureBuiltImage, ensureRootfsImage, removeStaleTags, type HostFile } from "./rootfs.js";

/** Repositories of the images the suites build; each tag is a hash of what went into it. */
export const IMAGE_REPOS = {
  /** The host's node + libs + /etc/ssl + busybox: the NODE_IMAGE the Dockerfile is built on. */
  nodeRuntime: "mirror-kit-e2e/node-runtime",
  /** The project's Dockerfile, built from dist/ on the runtime above. */
  mirrorKit: "mirror-kit-e2e/mirror-kit",
  /** Debian's docker-registry (CNCF distribution 2.8): the upstream registries. */
  registry: "mirror-kit-e2e/registry",
  /** dockerd + containerd + runc + docker CLI + ctr + jq + busybox: a Vagrant VM or dind devcontainer. */
  vm: "mirror-kit-e2e/vm",
  /** The VM plus sshd, sudo, bash and a vagrant user: a box for Vagrant's docker provider. */
  vagrantBox: "mirror-kit-e2e/vagrant-box",
  /** The VM plus bash, dockerd started from a devcontainer.metadata entrypoint: a base for the Dev Containers CLI. */
  devcontainerBase: "mirror-kit-e2e/devcontainer-base",
  /** The VM image with the generated Dev Container Feature installed; rebuilt per run (it holds the mirror URL). */
  devcontainer: "mirror-kit-e2e/devcontainer",
} as const;

const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const ETC = {
  "/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
  "/etc/group": "root:x:0:\n",
  "/etc/nsswitch.conf": "hosts: files dns\n",
};

const bin = (path: string, pkg: string): HostFile => ({ path, pkg });

const memo = new Map<string, Promise<string>>();
function once(key: string, build: () => Promise<string>): Promise<string> {
  let p = memo.get(key);
  if (!p) {
    p = build();
    memo.set(key, p);
    p.catch(() => memo.delete(key));
  }
  return p;
}

/** TESTING-OFFLINE.md §2: a Node runtime image from the host's own node, as NODE_IMAGE for the Dockerfile. */
export function nodeRuntimeImage(): Promise<string> {
  return once("node", () =>
    ensureRootfsImage(IMAGE_REPOS.nodeRuntime, {
      // The node running these tests, wherever it is installed, at the official images' path.
      binaries: [{ path: process.execPath, pkg: "nodejs", dest: "/usr/local/bin/node" }],
      trees: [bin("/etc/ssl", "ca-certificates")],
      busybox: true,
      dirs: { "/tmp": 0o1777 },
      files: ETC,
      changes: [`ENV PATH=${PATH}`, 'CMD ["node"]'],
    }),
  );
}

/** Debian's docker-registry with a config like the integration suites' (access log on stdout). */
export function registryImage(): Promise<string> {
  const config = {
    version: 0.1,
    log: { level: "info", formatter: "json", accesslog: { disabled: false } },
    storage: {
      filesystem: { rootdirectory: "/var/lib/registry" },
      delete: { enabled: true },
      // The purge goroutine would add unrelated work and log lines mid-test.
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: { addr: ":5000", secret: "mirror-kit-e2e" },
  };
  return once("registry", () =>
    ensureRootfsImage(IMAGE_REPOS.registry, {
      binaries: [bin("/usr/bin/docker-registry", "docker-registry")],
      dirs: { "/tmp": 0o1777, "/var/lib/registry": 0o755 },
      files: { ...ETC, "/etc/docker/registry/config.yml": stringify(config) },
      changes: ["EXPOSE 5000", 'ENTRYPOINT ["/usr/bin/docker-registry", "serve", "/etc/docker/registry/config.yml"]'],
    }),
  );
}

/**
 * The machine's init: what a VM's boot or the docker-in-docker Feature's entrypoint does before
 * dockerd. A container gets its cgroups read-only (v1: one mount per controller) or not delegated
 * (v2); the machine's engine must create cgroups for the containers it runs. Then dockerd, with flags
 * like the docker-in-docker Feature's (no --config-file, so it reads /etc/docker/daemon.json), and no
 * bridge or iptables, so it needs neither an iptables binary nor kernel modules.
 */
const VM_INIT = `#!/bin/sh
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  mount -o remount,rw /sys/fs/cgroup 2>/dev/null; mount -o remount,bind,rw /sys/fs/cgroup 2>/dev/null
  mkdir -p /sys/fs/cgroup/init
  xargs -rn1 < /sys/fs/cgroup/cgroup.procs > /sys/fs/cgroup/init/cgroup.procs 2>/dev/null
  sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
else
  for d in /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$d" 2>/dev/null; done
fi
exec dockerd --bridge=none --iptables=false --ip-masq=false "$@"
`;

/** The machine's root filesystem: the host's Debian docker.io/containerd/runc binaries and its init. */
export const VM_ROOTFS = {
  binaries: [
    bin("/usr/sbin/dockerd", "docker.io"),
    bin("/usr/bin/docker", "docker.io"),
    bin("/usr/bin/docker-init", "docker.io"),
    bin("/usr/bin/containerd", "containerd"),
    bin("/usr/bin/containerd-shim-runc-v2", "containerd"),
    bin("/usr/bin/ctr", "containerd"),
    bin("/usr/sbin/runc", "runc"),
    // The provisioning script and install.sh merge an existing daemon.json with jq.
    bin("/usr/bin/jq", "jq"),
  ],
  busybox: true,
  dirs: { "/tmp": 0o1777, "/run": 0o755, "/var/run": 0o755, "/var/lib/docker": 0o711, "/var/log": 0o755, "/root": 0o700 },
  files: { ...ETC, "/usr/local/bin/vm-init": VM_INIT },
  env: `ENV PATH=${PATH}`,
  // overlay2 cannot sit on the container's own overlay root: the engine's data needs a volume.
  volume: 'VOLUME ["/var/lib/docker"]',
} as const;

/**
 * A machine with its own Docker engine, from the host's Debian docker.io/containerd/runc binaries:
 * stands in for a Vagrant VM and for a docker-in-docker devcontainer (see vm-container.ts for how
 * it is run).
 */
export function vmImage(): Promise<string> {
  return once("vm", () =>
    ensureRootfsImage(IMAGE_REPOS.vm, {
      ...VM_ROOTFS,
      changes: [VM_ROOTFS.env, VM_ROOTFS.volume, 'ENTRYPOINT ["/usr/bin/docker-init", "--", "/bin/sh", "/usr/local/bin/vm-init"]'],
    }),
  );
}

function hashInputs(paths: readonly string[]): string {
  const hash = createHash("sha256");
  const add = (rel: string): void => {
    const abs = join(REPO_ROOT, rel);
    if (!existsSync(abs)) return;
    if (statSync(abs).isDirectory()) {
      for (const entry of readdirSync(abs).sort()) add(join(rel, entry));
    } else if (!rel.endsWith(".map")) {
      hash.update(`${rel}\0`).update(readFileSync(abs)).update("\0");
    }
  };
  for (const p of paths) add(p);
  return hash.digest("hex").slice(0, 16);
}

/**
 * The project's own Dockerfile, built like a user builds it offline: `docker build --build-arg
 * NODE_IMAGE=<local runtime> .` from the repository root. Tagged by a hash of the Dockerfile, the
 * context it copies and the base; node_modules counts through package-lock.json (npm ci installs it).
 */
export function mirrorKitImage(): Promise<string> {
  return once("mirror-kit", async () => {
    const base = await nodeRuntimeImage();
    const inputs = hashInputs(["Dockerfile", ".dockerignore", "package.json", "package-lock.json", "dist", "templates", "plugins"]);
    const tag = `${IMAGE_REPOS.mirrorKit}:${createHash("sha256").update(`${inputs}\0${base}`).digest("hex").slice(0, 16)}`;
    await ensureBuiltImage(tag, REPO_ROOT, { NODE_IMAGE: base });
    await removeStaleTags(IMAGE_REPOS.mirrorKit, tag);
    return tag;
  });
}

/**
 * A dev container image with the generated Feature installed the way the devcontainer CLI does it:
 * the Feature folder copied into a build layer, its options exported from devcontainer-features.env,
 * install.sh run as root at build time, on top of the docker-in-docker machine. Built per run (the
 * options hold this run's mirror URL), so the harness removes it afterwards.
 */
export async function devcontainerImage(h: E2eHarness, feature: DevcontainerFeature): Promise<string> {
  const context = await h.tempDir("devcontainer-build");
  await cp(feature.dir, join(context, "mirror-kit"), { recursive: true });
  const envFile = Object.entries(feature.env).map(([k, v]) => `${k}=${JSON.stringify(v)}\n`).join("");
  await writeFile(join(context, "mirror-kit", "devcontainer-features.env"), envFile);
  const featureDir = "/tmp/dev-container-features/mirror-kit_0";
  await writeFile(
    join(context, "Dockerfile"),
    [
      `FROM ${h.img.vm}`,
      `COPY mirror-kit/ ${featureDir}/`,
      `RUN cd ${featureDir} && set -a && . ./devcontainer-features.env && set +a && chmod +x ./install.sh && ./install.sh`,
      "",
    ].join("\n"),
  );
  const hash = createHash("sha256");
  for (const file of ["Dockerfile", "mirror-kit/install.sh", "mirror-kit/devcontainer-feature.json", "mirror-kit/devcontainer-features.env"]) {
    hash.update(readFileSync(join(context, file)));
  }
  const tag = `${IMAGE_REPOS.devcontainer}:${hash.digest("hex").slice(0, 16)}`;
  h.trackImage(tag);
  return ensureBuiltImage(tag, context, {});
}
