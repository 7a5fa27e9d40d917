// A real file system that fails on cue: faulty-fs.py (Debian's python3-fusepy) mounted over a backing
// folder through /dev/fuse, so a mirror's storage gets EIO from the kernel exactly as from a dying disk.
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ManagedProcess, run } from "./process.js";
import { makeTempDir, removeTempDir } from "./scratch.js";

const SCRIPT = join(import.meta.dirname, "faulty-fs.py");
/** Debian's python3, which has python3-fusepy (a python3 earlier on PATH, e.g. pyenv's, may not). */
const PYTHON = "/usr/bin/python3";

export class FaultyFs {
  private constructor(
    private readonly dir: string,
    /** Where the file system is mounted: the storage folder to give the mirror. */
    readonly mountpoint: string,
    /** The backing folder: what is really on the "disk", read behind the file system's back. */
    readonly backing: string,
    private readonly control: string,
    private readonly proc: ManagedProcess,
  ) {}

  /** Mounts a fresh, empty file system (root only: tests run as root, see .ci/run). */
  static async mount(): Promise<FaultyFs> {
    const probe = await run(PYTHON, ["-c", "import fusepy"], { allowFailure: true });
    if (probe.code !== 0) throw new Error(`faulty-fs needs fusepy for ${PYTHON} (Debian package: python3-fusepy)\n${probe.stderr}`);
    const dir = await makeTempDir("faulty-fs");
    const [mountpoint, backing, control] = ["mnt", "backing", "control"].map((n) => join(dir, n)) as [string, string, string];
    await run("mkdir", [mountpoint, backing]);
    const proc = new ManagedProcess("faulty-fs", PYTHON, [SCRIPT, backing, mountpoint, control]);
    const fs = new FaultyFs(dir, mountpoint, backing, control, proc);
    for (const until = Date.now() + 15_000; !(await fs.mounted()); ) {
      if (!proc.running || Date.now() > until) {
        await fs.unmount();
        throw new Error(`faulty-fs did not mount on ${mountpoint}\n${proc.logTail()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return fs;
  }

  /** "write": every change fails with EIO (reads pass); "all": reads too. */
  fail(mode: "write" | "all"): Promise<void> {
    return writeFile(this.control, mode);
  }

  heal(): Promise<void> {
    return rm(this.control, { force: true });
  }

  async unmount(): Promise<void> {
    await this.heal();
    await run("umount", ["-l", this.mountpoint], { allowFailure: true });
    await this.proc.stop(5_000);
    await removeTempDir(this.dir);
  }

  private async mounted(): Promise<boolean> {
    const mounts = await readFile("/proc/self/mounts", "utf8");
    return mounts.split("\n").some((l) => l.split(" ")[1] === this.mountpoint);
  }
}
