// WWW-Authenticate parsing (RFC 7235 auth-params) for the registry token flow.

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parse the first challenge of a WWW-Authenticate header: `Bearer realm="…",service="…",scope="…"`. */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const scheme = (m[1] as string).toLowerCase();
  const params: Record<string, string> = {};
  const re = /([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?/g;
  const rest = m[2] ?? "";
  let p: RegExpExecArray | null;
  while ((p = re.exec(rest)) !== null) {
    const key = (p[1] as string).toLowerCase();
    params[key] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : (p[3] ?? "");
  }
  return { scheme, params };
}
