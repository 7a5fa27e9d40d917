// The public registries mirror-kit knows out of the box. Each can be overridden or disabled in config;
// no host outside the configured set (plus the token realms and redirects those upstreams name) is contacted.

export interface BuiltinUpstream {
  url: string;
  aliases: string[];
  /** Token realms trusted with this upstream's credentials (origins or full URLs). */
  tokenRealms: string[];
  /** Docker Hub naming: one-segment names mean library/<name>. */
  officialImages: boolean;
}

export const BUILTIN_UPSTREAMS: Readonly<Record<string, BuiltinUpstream>> = {
  "docker.io": {
    url: "https://registry-1.docker.io",
    aliases: ["index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"],
    tokenRealms: ["https://auth.docker.io"],
    officialImages: true,
  },
  "ghcr.io": { url: "https://ghcr.io", aliases: [], tokenRealms: [], officialImages: false },
  "quay.io": { url: "https://quay.io", aliases: [], tokenRealms: [], officialImages: false },
  "registry.k8s.io": { url: "https://registry.k8s.io", aliases: ["k8s.gcr.io"], tokenRealms: [], officialImages: false },
  "gcr.io": { url: "https://gcr.io", aliases: [], tokenRealms: [], officialImages: false },
  "mcr.microsoft.com": { url: "https://mcr.microsoft.com", aliases: [], tokenRealms: [], officialImages: false },
  "public.ecr.aws": { url: "https://public.ecr.aws", aliases: [], tokenRealms: [], officialImages: false },
};
