// A slow link on the host: a TCP proxy in front of a real upstream that paces every response at a
// fixed rate, so a test can act (SIGKILL a replica) while a layer is still on its way. The
// registry behind it still logs and counts every request.
import { connect, createServer, type Server, type Socket } from "node:net";

export class SlowProxy {
  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly sockets: Set<Socket>,
  ) {}

  static async start(target: { host: string; port: number }, bytesPerSec: number): Promise<SlowProxy> {
    const sockets = new Set<Socket>();
    const server = createServer((client) => {
      const upstream = connect(target.port, target.host);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.once("close", () => sockets.delete(s));
      }
      let next = Date.now();
      client.pipe(upstream);
      upstream.on("data", (chunk: Buffer) => {
        next = Math.max(next, Date.now()) + (chunk.length / bytesPerSec) * 1000;
        const drained = client.write(chunk);
        const wait = next - Date.now();
        if (!drained || wait > 0) {
          upstream.pause();
          let pending = drained ? 1 : 2;
          const go = () => {
            if (--pending === 0) upstream.resume();
          };
          if (!drained) client.once("drain", go);
          setTimeout(go, Math.max(wait, 0));
        }
      });
      // A close on either side closes the other: the registry sees a replica that died.
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      upstream.on("end", () => client.end());
      client.on("error", close);
      upstream.on("error", close);
      client.on("close", close);
      upstream.on("close", () => {
        if (!client.writableEnded) client.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return new SlowProxy(server, (server.address() as { port: number }).port, sockets);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
  }
}
