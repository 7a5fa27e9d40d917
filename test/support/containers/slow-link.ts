// A slow internet link as a container: a TCP proxy in front of an upstream registry that paces every
// response at a fixed rate, so a test can act while a large layer is still on its way (kill, SIGTERM).
import { GenericContainer, Wait, type StartedTestContainer } from "testcontainers";
import type { E2eHarness } from "./harness.js";

// Runs in the Node runtime image. Requests pass as they are; responses are paced per connection with
// a one-chunk burst (idle keep-alive time earns no credit), and a close on either side closes the other,
// so a mirror that abandons a download makes the registry see (and log) the broken connection.
const SCRIPT = `
import net from "node:net";
const rate = Number(process.env.BYTES_PER_SEC);
const [host, port] = process.env.TARGET.split(":");
net.createServer((client) => {
  const upstream = net.connect(Number(port), host);
  let next = Date.now();
  client.pipe(upstream);
  upstream.on("data", (chunk) => {
    next = Math.max(next, Date.now()) + (chunk.length / rate) * 1000;
    const drained = client.write(chunk);
    const wait = next - Date.now();
    if (!drained || wait > 0) {
      upstream.pause();
      let pending = drained ? 1 : 2;
      const go = () => { if (--pending === 0) upstream.resume(); };
      if (!drained) client.once("drain", go);
      setTimeout(go, Math.max(wait, 0));
    }
  });
  upstream.on("end", () => client.end());
  const close = () => { client.destroy(); upstream.destroy(); };
  client.on("error", close);
  upstream.on("error", close);
  client.on("close", close);
  upstream.on("close", () => { if (!client.writableEnded) client.end(); });
}).listen(5000, () => console.log("slow link listening, target " + process.env.TARGET + " at " + rate + " B/s"));
`;

export class SlowLink {
  private constructor(
    readonly alias: string,
    readonly container: StartedTestContainer,
  ) {}

  /** Listens as http://<alias>:5000 and forwards to `target` (host:port on the e2e network). */
  static async start(h: E2eHarness, alias: string, target: string, bytesPerSec: number): Promise<SlowLink> {
    const container = h.track(
      await new GenericContainer(h.img.nodeRuntime)
        .withLabels(h.labels)
        .withNetwork(h.network)
        .withNetworkAliases(alias)
        .withEnvironment({ TARGET: target, BYTES_PER_SEC: String(bytesPerSec) })
        .withCopyContentToContainer([{ content: SCRIPT, target: "/slow-link.mjs" }])
        .withCommand(["node", "/slow-link.mjs"])
        .withWaitStrategy(Wait.forLogMessage(/slow link listening/))
        .withStartupTimeout(30_000)
        .start(),
    );
    return new SlowLink(alias, container);
  }

  get internalUrl(): string {
    return `http://${this.alias}:5000`;
  }
}
