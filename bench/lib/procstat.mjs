// What a server process costs, read from /proc: peak and current resident memory (VmHWM, VmRSS)
// and CPU time (utime + stime). The peak can be reset (clear_refs 5) so each workload has its own.
import { readFileSync, writeFileSync } from "node:fs";

const MiB = 1024 * 1024;
// Linux reports utime/stime in clock ticks; USER_HZ is 100 on every architecture Node runs on.
const TICKS_PER_SECOND = 100;

/** { hwmMiB, rssMiB } of a live process. */
export function memory(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
  return { hwmMiB: (kib("VmHWM") * 1024) / MiB, rssMiB: (kib("VmRSS") * 1024) / MiB };
}

/** Reset the peak (VmHWM) to the current RSS; false when the kernel or permissions refuse. */
export function resetPeak(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** CPU seconds (user + system) the process has used so far. */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may contain spaces; the fields after its closing paren are fixed.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/**
 * Measure one workload on a server process: CPU seconds used during it and its peak RSS.
 * `fn` returns its result and the bytes the server sent; CPU s/GB is CPU per 1e9 bytes served.
 */
export async function measured(pid, fn) {
  if (pid === undefined) {
    const r = await fn();
    return { ...r.result, served: r.bytes };
  }
  const peakReset = resetPeak(pid);
  const cpu0 = cpuSeconds(pid);
  const r = await fn();
  const cpu = cpuSeconds(pid) - cpu0;
  const { hwmMiB, rssMiB } = memory(pid);
  return { ...r.result, cpuSeconds: cpu, cpuSecondsPerGB: cpu / (r.bytes / 1e9), peakRssMiB: hwmMiB, rssMiB, peakReset };
}
