// Manifest GETs by tag under load: wrk (Debian's package) at a fixed number of connections,
// its latency percentiles and request rate parsed from --latency output. Errors void the figure.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";

export const WRK_BIN = process.env.BENCH_WRK_BIN || "/usr/bin/wrk";

export function haveWrk() {
  return existsSync(WRK_BIN);
}

const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function toMs(text) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!m) throw new Error(`wrk: cannot read the latency ${JSON.stringify(text)}`);
  return Number(m[1]) * UNIT_MS[m[2]];
}

/** Parse `wrk --latency` output: { requestsPerSec, p50Ms, p75Ms, p90Ms, p99Ms, requests }. */
export function parseWrk(out) {
  const pct = (p) => {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)`, "m").exec(out);
    if (!m) throw new Error(`wrk: no ${p}% latency in its output:\n${out}`);
    return toMs(m[1]);
  };
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
  const total = /^\s+(\d+) requests in/m.exec(out);
  if (!rps || !total) throw new Error(`wrk: unexpected output:\n${out}`);
  const bad = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (bad) throw new Error(`wrk: ${bad[1]} answers were not 2xx/3xx:\n${out}`);
  const errors = /Socket errors: (.*)/.exec(out);
  if (errors) throw new Error(`wrk: socket errors (${errors[1]}):\n${out}`);
  return { requestsPerSec: Number(rps[1]), p50Ms: pct(50), p75Ms: pct(75), p90Ms: pct(90), p99Ms: pct(99), requests: Number(total[1]) };
}

/** Run wrk against one URL for `seconds` with `connections` connections on 2 threads. */
export function runWrk(url, { connections, seconds, headers = {} }) {
  const args = ["-t", "2", "-c", String(connections), "-d", `${seconds}s`, "--latency", "--timeout", "10s"];
  for (const [k, v] of Object.entries(headers)) args.push("-H", `${k}: ${v}`);
  args.push(url);
  return new Promise((resolve, reject) => {
    execFile(WRK_BIN, args, { encoding: "utf8", timeout: (seconds + 30) * 1000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`wrk ${args.join(" ")}: ${stderr || err.message}`));
      try {
        resolve(parseWrk(stdout));
      } catch (e) {
        reject(e);
      }
    });
  });
}
