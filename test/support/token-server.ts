// A registry token server (the Docker Hub auth flow) for a real distribution upstream: it checks
// Basic credentials and issues JWTs signed with a throwaway certificate that the registry trusts.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { importPKCS8, SignJWT } from "jose";
import { run } from "./process.js";
import { makeTempDir, removeTempDir } from "./scratch.js";

export interface TokenRequest {
  authorization: string | undefined;
  scope: string | null;
  service: string | null;
}

export class TokenServer {
  readonly requests: TokenRequest[] = [];
  readonly issuer = "mk-test-issuer";
  readonly service = "mk-test-registry";

  private constructor(
    private readonly server: Server,
    private readonly dir: string,
    readonly rootCertBundle: string,
  ) {}

  /** Starts on a free port; `users` are the accounts allowed to get tokens (none: anonymous only). */
  static async start(users: Record<string, string>): Promise<TokenServer> {
    const dir = await makeTempDir("token");
    const keyPath = join(dir, "key.pem");
    const certPath = join(dir, "cert.pem");
    await run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyPath, "-out", certPath, "-days", "1", "-subj", "/CN=mk-test-token"]);
    const key = await importPKCS8(await readFile(keyPath, "utf8"), "RS256");
    // distribution verifies the x5c chain against rootcertbundle; the self-signed cert is its own root.
    const der = (await readFile(certPath, "utf8")).replace(/-----[^-]+-----|\s/g, "");
    const server = createServer();
    const ts = new TokenServer(server, dir, certPath);
    server.on("request", (req, res) => {
      void (async () => {
        const url = new URL(req.url ?? "/", "http://token.invalid");
        const scope = url.searchParams.get("scope");
        ts.requests.push({ authorization: req.headers.authorization, scope, service: url.searchParams.get("service") });
        const subject = checkBasic(req.headers.authorization, users);
        if (subject === null) {
          res.statusCode = 401;
          res.end('{"details":"bad credentials"}');
          return;
        }
        const actions = subject ? ["pull"] : [];
        const access = scope ? [{ type: "repository", name: scope.split(":")[1], actions }] : [];
        const now = Math.floor(Date.now() / 1000);
        const token = await new SignJWT({ access })
          .setProtectedHeader({ alg: "RS256", typ: "JWT", x5c: [der] })
          .setIssuer(ts.issuer)
          .setSubject(subject)
          .setAudience(ts.service)
          .setIssuedAt(now)
          .setNotBefore(now - 5)
          .setExpirationTime(now + 300)
          .setJti(`${now}-${ts.requests.length}`)
          .sign(key);
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ token, expires_in: 300, issued_at: new Date(now * 1000).toISOString() }));
      })().catch(() => res.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return ts;
  }

  get realm(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/token`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await removeTempDir(this.dir);
  }
}

/** "" for anonymous, the user name for good credentials, null for bad ones. */
function checkBasic(header: string | undefined, users: Record<string, string>): string | null {
  if (!header) return "";
  const m = /^Basic (.+)$/.exec(header);
  if (!m) return null;
  const [user, ...rest] = Buffer.from(m[1] as string, "base64").toString().split(":");
  return user !== undefined && users[user] === rest.join(":") ? user : null;
}
