// What `mirror-kit doctor` reports: one result per check, each failure with the exact fix, and
// the checks of the mirror itself (reachable from here, TLS trusted).
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { getJson, mirrorEndpoint } from "../cli/mirror-api.js";

export interface CheckResult {
  check: string;
  outcome: "ok" | "fail" | "skip";
  detail: string;
  /** For a failure: what to run or change, exactly. */
  fix?: string;
}

export const ok = (check: string, detail: string): CheckResult => ({ check, outcome: "ok", detail });
export const fail = (check: string, detail: string, fix: string): CheckResult => ({ check, outcome: "fail", detail, fix });
export const skip = (check: string, detail: string): CheckResult => ({ check, outcome: "skip", detail });

const TLS_ERRORS = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS|HOSTNAME_MISMATCH/;

/** GET /v2/ from this machine; for https also whether the certificate is trusted here. */
export async function checkReachable(mirror: string): Promise<CheckResult[]> {
  const { base, authorization } = mirrorEndpoint(mirror);
  const started = Date.now();
  try {
    const res = await fetch(new URL("/v2/", base), { headers: authorization ? { authorization } : {}, signal: AbortSignal.timeout(10_000) });
    await res.arrayBuffer();
    const api = res.headers.get("docker-distribution-api-version");
    const results: CheckResult[] = [];
    if (res.status !== 200 && res.status !== 401) {
      results.push(fail("mirror reachable from this machine", `GET ${base.origin}/v2/ answered ${res.status}`, `check that ${base.origin} is mirror-kit (mirror-kit serve, or mirror-kit up)`));
    } else if (api !== "registry/2.0") {
      results.push(fail("mirror reachable from this machine", `${base.origin} answers, but not as a registry (no Docker-Distribution-Api-Version)`, `point --mirror at the mirror itself, not at a proxy or another service`));
    } else {
      results.push(ok("mirror reachable from this machine", `GET ${base.origin}/v2/: ${res.status} in ${Date.now() - started} ms`));
    }
    results.push(base.protocol === "https:" ? ok("TLS trusted", `${base.host}'s certificate verifies on this machine`) : skip("TLS trusted", "plain HTTP: nothing to trust (containerd and podman must mark the mirror as plain HTTP: checked per client below)"));
    return results;
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = (err as Error).name === "TimeoutError" ? "no answer within 10 s" : (cause?.code ?? cause?.message ?? (err as Error).message);
    if (base.protocol === "https:" && TLS_ERRORS.test(why)) {
      return [
        ok("mirror reachable from this machine", `${base.host} answers TLS`),
        fail("TLS trusted", `${base.host}'s certificate is not trusted here: ${why}`, `install the mirror's CA: sudo cp ca.crt /usr/local/share/ca-certificates/mirror-kit.crt && sudo update-ca-certificates; for dockerd also: sudo mkdir -p /etc/docker/certs.d/${base.host} && sudo cp ca.crt /etc/docker/certs.d/${base.host}/ca.crt`),
      ];
    }
    return [fail("mirror reachable from this machine", `cannot reach ${base.origin}: ${why}`, `start the mirror (mirror-kit up, or mirror-kit serve --listen 0.0.0.0:${base.port || (base.protocol === "https:" ? 443 : 80)}), or pass the right --mirror URL`)];
  }
}

/** Whether the mirror saw a request for the canary image (its recent pulls). */
export async function mirrorSawImage(mirror: string, imageSuffix: string): Promise<boolean> {
  const status = await getJson<{ recentPulls: { image: string }[] }>(mirror, "/api/v1/status");
  return status.recentPulls.some((p) => p.image.endsWith(imageSuffix));
}

/** The full path of an executable on PATH, or undefined. */
export function onPath(tool: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return join(dir, tool);
    } catch {
      // not in this PATH entry
    }
  }
  return undefined;
}
