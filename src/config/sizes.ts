// Sizes as users write them ("20GB", "20G", "20GiB", "500MB", 1048576), parsed strictly: each
// spelling means exactly one number of bytes, and anything else is refused rather than guessed.

/**
 * Every unit is binary, whatever its spelling: K, KB and KiB are 1024 bytes, G, GB and GiB are
 * 1024³. That is what the bytes library (used before) and Docker's --memory read "GB" as, so a
 * cap written for either keeps its meaning; the SI reading of GB would be a second meaning.
 */
const UNITS: Readonly<Record<string, number>> = {
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
  tib: 1024 ** 4,
};

export type SizeResult = { ok: true; bytes: number } | { ok: false; reason: string };

export function parseSize(value: string | number): SizeResult {
  const expected = `expected a size such as "20GB", "20GiB", "500MB" or a whole number of bytes, got ${JSON.stringify(value)}`;
  if (typeof value === "number") {
    return Number.isSafeInteger(value) && value >= 0 ? { ok: true, bytes: value } : { ok: false, reason: `${expected} (a number of bytes is a whole number)` };
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  if (!m) return { ok: false, reason: expected };
  const [, amount, unitRaw] = m as unknown as [string, string, string];
  if (unitRaw === "") {
    // "1.5" has no reading: 1.5 bytes is not a size, and guessing a unit would be a second meaning.
    return /^\d+$/.test(amount) ? { ok: true, bytes: Number(amount) } : { ok: false, reason: `${expected} (a number without a unit is bytes, and must be whole; add a unit, e.g. "${amount}GB")` };
  }
  const unit = UNITS[unitRaw.toLowerCase()];
  if (unit === undefined || !Object.hasOwn(UNITS, unitRaw.toLowerCase())) return { ok: false, reason: `${expected} (unknown unit ${JSON.stringify(unitRaw)}; use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB)` };
  const bytes = Number(amount) * unit;
  if (!Number.isSafeInteger(bytes)) return { ok: false, reason: `${expected} (not a whole number of bytes, or too large)` };
  return { ok: true, bytes };
}

/** "20 GiB (21474836480 bytes)", for the startup log: the cap as the program understood it. */
export function describeSize(bytes: number): string {
  const units: [string, number][] = [
    ["TiB", 1024 ** 4],
    ["GiB", 1024 ** 3],
    ["MiB", 1024 ** 2],
    ["KiB", 1024],
  ];
  for (const [name, size] of units) {
    if (bytes >= size) return `${Math.round((bytes / size) * 100) / 100} ${name} (${bytes} bytes)`;
  }
  return `${bytes} bytes`;
}
