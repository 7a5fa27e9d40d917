// How upstream connections are made: undici's EnvHttpProxyAgent fed the resolved proxy settings (never
// process.env behind the config's back), the CAs a connection trusts, redirects that drop credentials.
import { BlockList, isIP } from "node:net";
import { Agent, EnvHttpProxyAgent, interceptors, type Dispatcher } from "undici";
import { parseCidr } from "../config/schema.js";
import type { UpstreamProxy } from "../config/resolve.js";

export interface TransportOptions {
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly proxy: UpstreamProxy;
  /** The whole trusted CA list for TLS to upstreams; absent: Node's defaults (roots + NODE_EXTRA_CA_CERTS). */
  readonly ca?: readonly string[];
}

export interface Transport {
  readonly dispatcher: Dispatcher;
  close(): Promise<void>;
}

export function createTransport(options: TransportOptions): Transport {
  const tls = options.ca ? { ca: [...options.ca] } : {};
  const common = {
    connect: { timeout: options.connectTimeoutMs, ...tls },
    headersTimeout: options.responseTimeoutMs,
    bodyTimeout: options.responseTimeoutMs,
    connections: 32,
  };
  const { names, ranges } = splitRanges(options.proxy.noProxy);
  // Every value is passed explicitly ("" = none): undici would otherwise read process.env itself,
  // and the config's own proxy setting could not override the environment.
  const agent = new EnvHttpProxyAgent({
    ...common,
    httpProxy: options.proxy.http ?? "",
    httpsProxy: options.proxy.https ?? "",
    noProxy: names.join(","),
    // http:// upstreams are sent to the proxy as absolute-form requests, as curl does, so the proxy
    // sees (and logs, and may filter) each request; https:// ones always go through CONNECT.
    proxyTunnel: false,
    requestTls: tls,
  });
  const closables: Dispatcher[] = [agent];
  let base: Dispatcher = agent;
  if (ranges) {
    // undici matches NO_PROXY entries as names only; curl and Go also skip the proxy for an address
    // inside a listed CIDR range. Those few go through a direct agent of their own.
    const direct = new Agent(common);
    closables.push(direct);
    const inRange = ranges;
    base = agent.compose((dispatch) => (opts, handler) => (isDirect(inRange, opts.origin) ? direct.dispatch(opts, handler) : dispatch(opts, handler)));
  }
  // Registries redirect blob GETs to CDNs; undici's redirect handler strips credentials on a change
  // of origin, so a CDN never sees the upstream's token. Each hop is routed (proxy or not) afresh.
  const dispatcher = base.compose(interceptors.redirect({ maxRedirections: 5 }));
  return {
    dispatcher,
    close: async () => {
      await Promise.all(closables.map((d) => d.destroy()));
    },
  };
}

function splitRanges(entries: readonly string[]): { names: string[]; ranges?: BlockList } {
  const names: string[] = [];
  let ranges: BlockList | undefined;
  for (const entry of entries) {
    const cidr = parseCidr(entry);
    if (!cidr) {
      names.push(entry);
      continue;
    }
    ranges ??= new BlockList();
    ranges.addSubnet(cidr.address, cidr.prefix, cidr.family);
  }
  return ranges ? { names, ranges } : { names };
}

function isDirect(ranges: BlockList, origin: Dispatcher.DispatchOptions["origin"]): boolean {
  if (origin === undefined) return false;
  const host = new URL(String(origin)).hostname.replace(/^\[|\]$/g, "");
  const family = isIP(host);
  return family !== 0 && ranges.check(host, family === 4 ? "ipv4" : "ipv6");
}
