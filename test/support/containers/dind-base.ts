// A local dev container base image with its own Docker engine, for the Dev Containers CLI: the VM image
// plus bash, started the way the docker-in-docker Feature starts dockerd (an entrypoint from metadata).
import { readFileSync } from "node:fs";
import { IMAGE_REPOS, VM_ROOTFS } from "./images.js";
import { ensureRootfsImage } from "./rootfs.js";
import { machineCapabilities } from "./vm-container.js";

/**
 * Like the docker-in-docker Feature's docker-init.sh: dockerd in the background, then the command the
 * CLI runs to keep the container up. Its log goes to a file the suite can read when a pull fails.
 */
const DIND_ENTRYPOINT = `#!/bin/sh
sh /usr/local/bin/vm-init >/var/log/dockerd.log 2>&1 &
exec "$@"
`;

let base: Promise<string> | undefined;

/**
 * Builds (or reuses) the image. Its devcontainer.metadata label carries what the docker-in-docker Feature
 * declares (entrypoint, the machine's capabilities) so the CLI applies it to every container it starts,
 * `features test` included. The capabilities stand for `privileged: true`, which this host refuses
 * (its bounding set lacks CAP_SYS_RESOURCE; see vm-container.ts).
 */
export function devcontainerBaseImage(): Promise<string> {
  const metadata = [
    {
      id: "mirror-kit-e2e-dind",
      // The CLI pastes each entrypoint into its own start script, as a command.
      entrypoint: "sh /usr/local/share/mk-dind-init.sh",
      capAdd: machineCapabilities(),
      securityOpt: ["seccomp=unconfined", "apparmor=unconfined"],
    },
  ];
  base ??= ensureRootfsImage(IMAGE_REPOS.devcontainerBase, {
    ...VM_ROOTFS,
    // The Features test library (dev-container-features-test-lib) and generated test.sh are bash.
    binaries: [...VM_ROOTFS.binaries, { path: "/usr/bin/bash", pkg: "bash", dest: "/bin/bash" }],
    files: {
      ...VM_ROOTFS.files,
      // The CLI reads os-release for the Features' _REMOTE_USER environment; the binaries are Debian's.
      "/etc/os-release": readFileSync("/etc/os-release", "utf8"),
      "/usr/local/share/mk-dind-init.sh": DIND_ENTRYPOINT,
    },
    changes: [VM_ROOTFS.env, VM_ROOTFS.volume, `LABEL devcontainer.metadata=${JSON.stringify(JSON.stringify(metadata))}`, 'CMD ["sleep", "infinity"]'],
  });
  base.catch(() => (base = undefined));
  return base;
}
