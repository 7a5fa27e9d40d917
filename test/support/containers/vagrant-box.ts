// A "box" for Vagrant's docker provider, built offline from the host's binaries: the VM image (its own
// dockerd) plus sshd, sudo, bash and a `vagrant` user that accepts Vagrant's insecure key, as real boxes do.
import { existsSync, readFileSync } from "node:fs";
import { IMAGE_REPOS, VM_ROOTFS } from "./images.js";
import { ensureRootfsImage, type HostFile } from "./rootfs.js";

/** Where Debian's vagrant package keeps the insecure key pair every public box trusts. */
export const VAGRANT_KEYS_DIR = "/usr/share/rubygems-integration/all/gems/vagrant-2.3.4/keys";

const bin = (path: string, pkg: string): HostFile => ({ path, pkg });

/**
 * The box's init: host keys and the vagrant user's home (the import makes every file root's), sshd in
 * the background, then the VM's own init (cgroups, dockerd) as a VM's boot would start them.
 */
const BOX_INIT = `#!/bin/sh
set -e
ssh-keygen -A >/dev/null
chown -R 1000:1000 /home/vagrant
chmod 0440 /etc/sudoers
/usr/sbin/sshd -E /var/log/sshd.log
exec /bin/sh /usr/local/bin/vm-init "$@"
`;

const SSHD_CONFIG = [
  "Port 22",
  // No PAM in the box: keys only, no passwords.
  "UsePAM no",
  "PasswordAuthentication no",
  "KbdInteractiveAuthentication no",
  "PubkeyAuthentication yes",
  "PermitRootLogin no",
  "AuthorizedKeysFile .ssh/authorized_keys",
  // Vagrant's shell provisioner uploads its script with scp (the legacy protocol) or SFTP.
  "Subsystem sftp /usr/lib/openssh/sftp-server",
  "",
].join("\n");

// sudo asks PAM for the account and session even with NOPASSWD; the box has no PAM stack of its own.
const PAM_PERMIT = ["auth sufficient pam_permit.so", "account sufficient pam_permit.so", "session sufficient pam_permit.so", ""].join("\n");

let box: Promise<string> | undefined;

/** Builds (or reuses, by content hash) the box image; every file comes from the host, nothing is pulled. */
export function vagrantBoxImage(): Promise<string> {
  const pubKey = `${VAGRANT_KEYS_DIR}/vagrant.pub`;
  if (!existsSync(pubKey)) throw new Error(`Vagrant box cannot be built: ${pubKey} is missing (Debian package: vagrant)`);
  box ??= ensureRootfsImage(IMAGE_REPOS.vagrantBox, {
    ...VM_ROOTFS,
    binaries: [
      ...VM_ROOTFS.binaries,
      bin("/usr/sbin/sshd", "openssh-server"),
      bin("/usr/lib/openssh/sftp-server", "openssh-sftp-server"),
      bin("/usr/bin/ssh-keygen", "openssh-client"),
      bin("/usr/bin/scp", "openssh-client"),
      bin("/usr/bin/bash", "bash"),
      bin("/usr/bin/sudo", "sudo"),
      bin("/usr/libexec/sudo/sudoers.so", "sudo"),
      // libpam looks for modules under /lib, where ldd also puts every library in the image.
      bin("/lib/x86_64-linux-gnu/security/pam_permit.so", "libpam-modules"),
    ],
    dirs: { ...VM_ROOTFS.dirs, "/run/sshd": 0o755, "/home/vagrant": 0o755, "/home/vagrant/.ssh": 0o700, "/etc/ssh": 0o755 },
    files: {
      ...VM_ROOTFS.files,
      "/etc/passwd": "root:x:0:0:root:/root:/bin/sh\nsshd:x:101:65534::/run/sshd:/usr/sbin/nologin\nvagrant:x:1000:1000:vagrant:/home/vagrant:/usr/bin/bash\n",
      "/etc/group": "root:x:0:\nnogroup:x:65534:\nvagrant:x:1000:\n",
      // "*": no password, but not locked ("!"), so sshd still takes the key.
      "/etc/shadow": "root:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\nvagrant:*:19000:0:99999:7:::\n",
      // Vagrant picks the guest's capabilities from os-release: the box is Debian's binaries, so Debian.
      "/etc/os-release": readFileSync("/etc/os-release", "utf8"),
      "/etc/ssh/sshd_config": SSHD_CONFIG,
      "/etc/sudoers": "root ALL=(ALL:ALL) ALL\nvagrant ALL=(ALL) NOPASSWD: ALL\n",
      "/etc/pam.d/sudo": PAM_PERMIT,
      "/etc/pam.d/other": PAM_PERMIT,
      "/home/vagrant/.ssh/authorized_keys": readFileSync(pubKey, "utf8"),
      "/usr/local/bin/box-init": BOX_INIT,
    },
    changes: [VM_ROOTFS.env, VM_ROOTFS.volume, "EXPOSE 22", 'ENTRYPOINT ["/usr/bin/docker-init", "--", "/bin/sh", "/usr/local/bin/box-init"]'],
  });
  box.catch(() => (box = undefined));
  return box;
}
