import { describe, expect, it } from "vitest";
import { resolveConfig } from "../config/resolve.js";
import { parseConfig } from "../config/schema.js";
import { resolveTarget } from "./route.js";

const config = resolveConfig(parseConfig({ upstreams: { "registry.local:5000": { url: "http://10.0.0.9:5000" } } }));

describe("routing a request to an upstream", () => {
  it.each([
    // name in the URL, ns query, upstream, name sent upstream
    ["busybox", null, "docker.io", "library/busybox"],
    ["library/busybox", null, "docker.io", "library/busybox"],
    ["bitnami/redis", null, "docker.io", "bitnami/redis"],
    ["library/alpine", "docker.io", "docker.io", "library/alpine"],
    ["alpine", "index.docker.io", "docker.io", "library/alpine"],
    ["owner/img", "ghcr.io", "ghcr.io", "owner/img"],
    ["ghcr.io/owner/img", null, "ghcr.io", "owner/img"],
    ["quay.io/coreos/etcd", null, "quay.io", "coreos/etcd"],
    ["docker.io/busybox", null, "docker.io", "library/busybox"],
    ["registry.k8s.io/pause", null, "registry.k8s.io", "pause"],
    ["x/y", "registry.local:5000", "registry.local:5000", "x/y"],
    ["registry.local:5000/team/app", null, "registry.local:5000", "team/app"],
  ])("%s ns=%s goes to %s as %s", (name, ns, upstream, upstreamName) => {
    const t = resolveTarget(name, ns, config);
    expect([t.upstream.name, t.name, t.clientName]).toEqual([upstream, upstreamName, name]);
  });

  it.each([
    ["x/y", "evil.example.com"],
    ["evil.example.com/x/y", null],
    ["localhost/x", null],
    ["x", "169.254.169.254"],
    ["169.254.169.254:80/x", null],
  ])("refuses %s ns=%s: no open proxy", (name, ns) => {
    expect(() => resolveTarget(name, ns, config)).toThrowError(expect.objectContaining({ code: "DENIED" }));
  });

  it.each([["../../etc"], ["ghcr.io/../x"], ["registry.local:5000/%2e%2e/x"], ["ghcr.io/"]])("rejects the hostile name %s", (name) => {
    expect(() => resolveTarget(name, null, config)).toThrowError(expect.objectContaining({ code: "NAME_INVALID" }));
  });
});
