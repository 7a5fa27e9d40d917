// Order statistics for benchmark samples: medians resist the odd slow run on a shared machine,
// min/max show the spread that a median hides.
export function median(xs) {
  return percentile(xs, 50);
}

/** Linear interpolation between closest ranks (the same definition numpy uses by default). */
export function percentile(xs, p) {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = ((s.length - 1) * p) / 100;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

export function summary(xs) {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), samples: xs };
}
