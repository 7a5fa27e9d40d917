// A real S3 server for the S3 store's suites: Ceph's RADOS Gateway over a one-node, in-memory Ceph
// cluster (ceph-rgw.sh), on free loopback ports, with a name for virtual-hosted bucket addressing.
import { lookup as dnsLookup } from "node:dns";
import type { LookupFunction } from "node:net";
import { Agent } from "node:http";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { requireTools } from "./preflight.js";
import { run } from "./process.js";
import { makeTempDir, removeTempDir } from "./scratch.js";

const SCRIPT = fileURLToPath(new URL("./ceph-rgw.sh", import.meta.url));
/** radosgw takes Host: <bucket>.s3.mk.test as virtual-hosted; the handler below resolves it to loopback. */
export const RGW_DNS_NAME = "s3.mk.test";

export class CephRgw {
  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly accessKey: string,
    readonly secretKey: string,
  ) {}

  static async start(): Promise<CephRgw> {
    requireTools(["radosgw", "ceph-mon", "ceph-osd", "curl"], { root: true });
    const dir = await makeTempDir("rgw");
    const [port, monPort] = await freePorts(2);
    const r = await run("bash", [SCRIPT, "start", dir, String(port)], { env: { ...process.env, MONPORT: String(monPort), RGW_DNS_NAME }, timeoutMs: 180_000, allowFailure: true });
    if (r.code !== 0) {
      await run("bash", [SCRIPT, "stop", dir], { allowFailure: true });
      await removeTempDir(dir);
      throw new Error(`Ceph RGW did not start (exit ${r.code}): ${r.stderr.slice(-2000)}`);
    }
    const [, access, secret] = r.stdout.trim().split(/\s+/);
    return new CephRgw(dir, port, access as string, secret as string);
  }

  /** Path-style endpoint. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** An endpoint whose bucket subdomains (virtual-hosted addressing) reach this gateway through virtualHostHandler(). */
  get namedEndpoint(): string {
    return `http://${RGW_DNS_NAME}:${this.port}`;
  }

  /** Stop only the gateway (an outage); the objects stay in the cluster behind it. */
  async gatewayDown(): Promise<void> {
    const r = await run("bash", [SCRIPT, "rgw-down", this.dir], { allowFailure: true });
    if (r.code !== 0) throw new Error(`rgw-down: ${r.stderr}`);
  }

  async gatewayUp(): Promise<void> {
    const r = await run("bash", [SCRIPT, "rgw-up", this.dir, String(this.port)], { timeoutMs: 90_000, allowFailure: true });
    if (r.code !== 0) throw new Error(`rgw-up: ${r.stderr}`);
  }

  async close(): Promise<void> {
    await run("bash", [SCRIPT, "stop", this.dir], { allowFailure: true });
    await removeTempDir(this.dir);
  }
}

/**
 * An HTTP handler that resolves *.s3.mk.test to 127.0.0.1 (no DNS server here knows the name);
 * `hosts` collects the names it was asked, so a test can see the bucket went in the host name.
 */
export function virtualHostHandler(): { handler: NodeHttpHandler; hosts: Set<string> } {
  const hosts = new Set<string>();
  const lookup = ((host: string, options: unknown, cb: (...args: unknown[]) => void) => {
    hosts.add(host);
    if (host === RGW_DNS_NAME || host.endsWith(`.${RGW_DNS_NAME}`)) {
      const all = typeof options === "object" && options !== null && (options as { all?: boolean }).all;
      return all ? cb(null, [{ address: "127.0.0.1", family: 4 }]) : cb(null, "127.0.0.1", 4);
    }
    return (dnsLookup as unknown as (...a: unknown[]) => void)(host, options, cb);
  }) as unknown as LookupFunction;
  return { handler: new NodeHttpHandler({ httpAgent: new Agent({ keepAlive: true, lookup } as never) }), hosts };
}

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
      const s = createServer();
      s.once("error", reject);
      s.listen(0, "127.0.0.1", () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}
