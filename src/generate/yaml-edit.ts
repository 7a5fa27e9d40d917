// Minimal-diff edits to a user's YAML: the yaml Document API finds nodes and renders new ones, and the
// change is spliced into the original text so the user's comments, quoting and spacing stay byte-exact.
import { Document, isMap, isScalar, isSeq, parseDocument, Pair, YAMLMap, type Node, type ToStringOptions } from "yaml";
import { GenerateError, lineCol } from "./errors.js";

export interface Layout {
  /** Spaces per nesting level. */
  indent: number;
  /** Whether block sequences are indented below their key ("key:\n  - a") or not ("key:\n- a"). */
  indentSeq: boolean;
}

export function parseYaml(text: string, display: string): Document.Parsed {
  const doc = parseDocument(text, { keepSourceTokens: false, prettyErrors: false });
  const error = doc.errors[0];
  if (error) {
    const { line, col } = lineCol(text, error.pos[0]);
    throw new GenerateError("BAD_INPUT", `not valid YAML at line ${line}, column ${col}: ${error.message.split("\n")[0]}`, display);
  }
  return doc;
}

/** Infers the file's indentation habits so inserted blocks look like the user wrote them. */
export function detectLayout(text: string): Layout {
  const lines = text.split("\n");
  let indent = 0;
  let indentSeq: boolean | undefined;
  for (let i = 0; i + 1 < lines.length; i++) {
    const cur = /^( *)[^\s#-][^:]*:\s*(#.*)?$/.exec(lines[i] ?? "");
    if (!cur) continue;
    const next = /^( *)(- )?\S/.exec(lines[i + 1] ?? "");
    if (!next) continue;
    const delta = (next[1] ?? "").length - (cur[1] ?? "").length;
    if (next[2]) indentSeq ??= delta > 0;
    else if (delta > 0 && indent === 0) indent = delta;
  }
  return { indent: indent || 2, indentSeq: indentSeq ?? true };
}

export function stringifyOptions(layout: Layout): ToStringOptions {
  return { indent: layout.indent, indentSeq: layout.indentSeq, lineWidth: 0, flowCollectionPadding: false };
}

/** Renders `key: value` as block YAML text, every line prefixed with `prefix`, ending in "\n". */
export function renderPair(pair: Pair, layout: Layout, prefix: string): string {
  const map = new YAMLMap();
  map.items.push(pair);
  const doc = new Document();
  doc.contents = map;
  return indentLines(doc.toString(stringifyOptions(layout)), prefix);
}

export function indentLines(text: string, prefix: string): string {
  return text
    .replace(/\n$/, "")
    .split("\n")
    .map((l) => (l === "" ? l : prefix + l))
    .join("\n")
    .concat("\n");
}

export function lineStart(text: string, pos: number): number {
  return text.lastIndexOf("\n", pos - 1) + 1;
}

/** Offset just past the line holding `pos` (the node's trailing comment included). */
export function afterLine(text: string, pos: number): number {
  if (pos > 0 && text[pos - 1] === "\n") return pos;
  const nl = text.indexOf("\n", pos);
  return nl === -1 ? text.length : nl + 1;
}

export function column(text: string, pos: number): number {
  return pos - lineStart(text, pos);
}

/** Where a new item goes at the end of a block map or sequence: after its last item's line. */
export function endOfCollection(text: string, node: YAMLMap | import("yaml").YAMLSeq): number | null {
  const last = node.items[node.items.length - 1];
  if (!last) return null;
  const end = isPairNode(last) ? (last.value as Node | null)?.range?.[1] ?? (last.key as Node).range?.[1] : (last as Node).range?.[1];
  return end === undefined ? null : afterLine(text, end);
}

function isPairNode(x: unknown): x is Pair {
  return x instanceof Pair;
}

/** Inserts `block` at `pos`, adding the newline a file without a final one needs. */
export function insertAt(text: string, pos: number, block: string): string {
  const head = text.slice(0, pos);
  const sep = head.length > 0 && !head.endsWith("\n") ? "\n" : "";
  return head + sep + block + text.slice(pos);
}

export function isBlockMap(node: unknown): node is YAMLMap {
  return isMap(node) && !node.flow && node.items.length > 0;
}

export function isBlockSeq(node: unknown): node is import("yaml").YAMLSeq {
  return isSeq(node) && !node.flow && node.items.length > 0;
}

export function scalarString(node: unknown): string | undefined {
  return isScalar(node) && typeof node.value === "string" ? node.value : undefined;
}
