// The distribution API's URL space. Paths are matched undecoded: repository names cannot contain
// "%", so percent-encoded tricks (%2e%2e, %2f) fail name validation instead of reaching the disk.

export type Route =
  | { kind: "base" }
  | { kind: "catalog" }
  | { kind: "manifest"; name: string; reference: string }
  | { kind: "blob"; name: string; digest: string }
  | { kind: "upload"; name: string }
  | { kind: "tags"; name: string }
  | { kind: "referrers"; name: string; digest: string }
  | { kind: "healthz" }
  | { kind: "metrics" }
  | { kind: "dashboard" }
  | { kind: "ui"; file: string }
  | { kind: "status" }
  | { kind: "status-events" }
  | { kind: "repositories" }
  | { kind: "import" }
  | { kind: "unknown" };

const PATTERNS: [RegExp, (m: RegExpExecArray) => Route][] = [
  [/^\/v2\/?$/, () => ({ kind: "base" })],
  [/^\/v2\/_catalog$/, () => ({ kind: "catalog" })],
  [/^\/v2\/(.+)\/manifests\/([^/]+)$/, (m) => ({ kind: "manifest", name: m[1] as string, reference: m[2] as string })],
  [/^\/v2\/(.+)\/blobs\/uploads(?:\/.*)?$/, (m) => ({ kind: "upload", name: m[1] as string })],
  [/^\/v2\/(.+)\/blobs\/([^/]+)$/, (m) => ({ kind: "blob", name: m[1] as string, digest: m[2] as string })],
  [/^\/v2\/(.+)\/tags\/list$/, (m) => ({ kind: "tags", name: m[1] as string })],
  [/^\/v2\/(.+)\/referrers\/([^/]+)$/, (m) => ({ kind: "referrers", name: m[1] as string, digest: m[2] as string })],
  [/^\/healthz$/, () => ({ kind: "healthz" })],
  [/^\/metrics$/, () => ({ kind: "metrics" })],
  [/^\/$/, () => ({ kind: "dashboard" })],
  [/^\/ui\/([a-z0-9.-]{1,64})$/, (m) => ({ kind: "ui", file: m[1] as string })],
  [/^\/api\/v1\/status$/, () => ({ kind: "status" })],
  [/^\/api\/v1\/events$/, () => ({ kind: "status-events" })],
  [/^\/api\/v1\/repositories$/, () => ({ kind: "repositories" })],
  [/^\/api\/v1\/import$/, () => ({ kind: "import" })],
];

export function matchRoute(pathname: string): Route {
  for (const [re, build] of PATTERNS) {
    const m = re.exec(pathname);
    if (m) return build(m);
  }
  return { kind: "unknown" };
}
