// The address other machines and containers use to reach this one: the IPv4 address of the interface
// that carries the default route (what a builder container or another k3s node can connect to).
import { readFileSync } from "node:fs";
import { networkInterfaces } from "node:os";

/** Undefined when there is no default route with an IPv4 address (then the caller must ask for --host). */
export function detectLanAddress(): string | undefined {
  const iface = defaultRouteInterface();
  if (!iface) return undefined;
  return networkInterfaces()[iface]?.find((a) => a.family === "IPv4" && !a.internal)?.address;
}

function defaultRouteInterface(): string | undefined {
  let table: string;
  try {
    table = readFileSync("/proc/net/route", "utf8");
  } catch {
    return undefined; // not Linux: no way to tell which interface other machines see
  }
  // Columns: Iface Destination Gateway Flags ...; the default route has destination 00000000.
  for (const line of table.split("\n").slice(1)) {
    const [iface, destination] = line.trim().split(/\s+/);
    if (iface && destination === "00000000") return iface;
  }
  return undefined;
}
