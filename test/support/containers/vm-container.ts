// A client machine: a container with a machine's privileges running its own dockerd and containerd,
// standing in for a Vagrant VM or a docker-in-docker devcontainer. Wired by the generated scripts.
import { readFileSync } from "node:fs";
import { GenericContainer, Wait, type StartedTestContainer } from "testcontainers";
import { containerLogLines, dockerApi, waitFor } from "./engine.js";
import type { E2eHarness } from "./harness.js";

/** The containerd dockerd starts for itself inside the machine. */
const CONTAINERD_SOCKET = "/var/run/docker/containerd/containerd.sock";

// Linux capabilities 0..37 (CAP_CHOWN … CAP_AUDIT_READ), the set every Docker engine since 20.10 knows.
const CAPABILITIES = [
  "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE",
  "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT",
  "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE",
  "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
];

/**
 * What `--privileged` would grant, limited to the capabilities this machine has. On a sandboxed host
 * whose bounding set lacks one (these CI machines lack CAP_SYS_RESOURCE), --privileged asks runc for
 * it anyway and every start fails with "unable to apply caps: operation not permitted".
 */
export function machineCapabilities(): string[] {
  const hex = /^CapBnd:\s*([0-9a-f]+)/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "0";
  const bounding = BigInt(`0x${hex}`);
  return CAPABILITIES.filter((_, bit) => (bounding >> BigInt(bit)) & 1n);
}

export interface VmOptions {
  /** Defaults to the plain VM image; the devcontainer suite passes the image with the Feature installed. */
  image?: string;
  /** e.g. host.docker.internal → host-gateway, as devcontainer.json runArgs --add-host do. */
  extraHosts?: { host: string; ipAddress: string }[];
  /** Files present before the engine starts, e.g. an existing /etc/docker/daemon.json. */
  files?: Record<string, string>;
}

export class VmContainer {
  private constructor(
    readonly name: string,
    readonly container: StartedTestContainer,
  ) {}

  static async start(h: E2eHarness, name: string, opts: VmOptions = {}): Promise<VmContainer> {
    let builder = new GenericContainer(opts.image ?? h.img.vm)
      .withLabels(h.labels)
      .withAddedCapabilities(...machineCapabilities())
      .withSecurityOpt("seccomp=unconfined", "apparmor=unconfined")
      .withNetwork(h.network)
      .withExtraHosts(opts.extraHosts ?? [])
      .withWaitStrategy(Wait.forLogMessage(/API listen on/))
      .withStartupTimeout(90_000);
    const files = Object.entries(opts.files ?? {});
    if (files.length > 0) builder = builder.withCopyContentToContainer(files.map(([target, content]) => ({ content, target })));
    return new VmContainer(name, h.track(await builder.start()));
  }

  get id(): string {
    return this.container.getId();
  }

  /** Runs a command in the machine as root; a non-zero exit throws with its output and the engine's log. */
  async sh(cmd: readonly string[], env: Record<string, string> = {}): Promise<string> {
    const r = await this.container.exec([...cmd], { env });
    if (r.exitCode !== 0) {
      throw new Error(`${this.name}: \`${cmd.join(" ")}\` exited ${r.exitCode}:\n${r.output}\n--- dockerd log (tail) ---\n${(await this.engineLog()).slice(-25).join("\n")}`);
    }
    return r.stdout;
  }

  /** Copies a host file in and runs it with sh, the way Vagrant's shell provisioner runs a script. */
  async runScript(hostPath: string, env: Record<string, string>): Promise<string> {
    const target = `/tmp/${this.name}-script.sh`;
    await this.container.copyFilesToContainer([{ source: hostPath, target, mode: 0o755 }]);
    const r = await this.container.exec(["sh", target], { env });
    if (r.exitCode !== 0) throw new Error(`${this.name}: ${hostPath} exited ${r.exitCode}:\n${r.output}`);
    return r.output;
  }

  /** Until the running engine reports `mirrorUrl` among its registry mirrors (after a reload). */
  async waitForMirror(mirrorUrl: string): Promise<void> {
    const want = `${mirrorUrl.replace(/\/$/, "")}/`;
    await waitFor(
      `${this.name}'s dockerd to list ${want} in its registry mirrors`,
      async () => {
        const mirrors = JSON.parse(await this.sh(["docker", "info", "--format", "{{json .RegistryConfig.Mirrors}}"])) as string[] | null;
        return mirrors?.includes(want) ? true : undefined;
      },
      20_000,
    );
  }

  /** `docker pull REF`; returns the manifest digest the engine reports. */
  async dockerPull(ref: string): Promise<string> {
    const out = await this.sh(["docker", "pull", ref]);
    const digest = /Digest: (sha256:[0-9a-f]{64})/.exec(out)?.[1];
    if (!digest) throw new Error(`${this.name}: docker pull ${ref} printed no digest:\n${out}`);
    return digest;
  }

  /** Runs IMAGE without network: proof that the pulled layers unpack into a working root filesystem. */
  async dockerRun(ref: string, cmd: readonly string[] = []): Promise<string> {
    return this.sh(["docker", "run", "--rm", "--network", "none", ref, ...cmd]);
  }

  /** `ctr images pull` through the machine's own containerd with a hosts.toml directory; returns the image's digest. */
  async ctrPull(ref: string, hostsDir: string): Promise<string> {
    await this.sh(["ctr", "-a", CONTAINERD_SOCKET, "-n", "e2e", "images", "pull", "--hosts-dir", hostsDir, ref]);
    const list = await this.sh(["ctr", "-a", CONTAINERD_SOCKET, "-n", "e2e", "images", "ls"]);
    for (const line of list.split("\n").slice(1)) {
      const [name, , digest] = line.trim().split(/\s+/);
      if (name === ref && digest) return digest;
    }
    throw new Error(`${this.name}: ${ref} not listed by ctr after the pull:\n${list}`);
  }

  async engineLog(): Promise<string[]> {
    return containerLogLines(this.id);
  }

  /**
   * dockerd's own lines saying it gave up on a mirror and tried the next endpoint (in the end
   * registry-1.docker.io). None means the mirror answered everything the first time.
   */
  async fallbackLines(): Promise<string[]> {
    return (await this.engineLog()).filter((l) => /Attempting next endpoint|Not continuing with pull|registry-1\.docker\.io/.test(l));
  }

  /** Pulls the plug: SIGKILL to the whole machine, every process and connection in it gone at once. */
  async kill(): Promise<void> {
    await dockerApi().getContainer(this.id).kill();
  }
}
