// Inserts into a JSONC document (devcontainer.json) by splicing text at nodes found with jsonc-parser:
// jsonc's own modify() re-formats whole lines around an edit, which would rewrite the user's lines.
import { findNodeAtLocation, parseTree, type Node as JsonNode, type JSONPath } from "jsonc-parser";
import { MirrorKitError } from "../errors.js";

export interface JsoncStyle {
  /** One indentation step, e.g. "  " or "\t". */
  unit: string;
  eol: string;
}

export function detectStyle(text: string): JsoncStyle {
  return { unit: /\n([ \t]+)"/.exec(text)?.[1] ?? "  ", eol: text.includes("\r\n") ? "\r\n" : "\n" };
}

/** Small values on one line: `{ "mirrorUrl": "http://…" }`, `["--add-host=…"]`. */
export function inline(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(inline).join(", ")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value);
    return entries.length === 0 ? "{}" : `{ ${entries.map(([k, v]) => `${JSON.stringify(k)}: ${inline(v)}`).join(", ")} }`;
  }
  return JSON.stringify(value);
}

function node(text: string, path: JSONPath): JsonNode | undefined {
  const tree = parseTree(text, [], { allowTrailingComma: true });
  return tree ? findNodeAtLocation(tree, path) : undefined;
}

function indentAt(text: string, offset: number): string {
  const start = text.lastIndexOf("\n", offset - 1) + 1;
  return /^[ \t]*/.exec(text.slice(start))![0];
}

function splice(text: string, offset: number, remove: number, insert: string): string {
  return text.slice(0, offset) + insert + text.slice(offset + remove);
}

/** Sets `key` in the object at `path` (which must exist): replaces its value or adds it last. */
export function setProperty(text: string, path: JSONPath, key: string, value: unknown, style: JsoncStyle): string {
  const obj = node(text, path);
  if (!obj || obj.type !== "object") throw new MirrorKitError("MK_INTERNAL", `setProperty: no object at ${JSON.stringify(path)}`);
  const existing = node(text, [...path, key]);
  if (existing) return splice(text, existing.offset, existing.length, inline(value));
  const props = obj.children ?? [];
  const last = props[props.length - 1];
  const entry = `${JSON.stringify(key)}: ${inline(value)}`;
  if (!last) {
    const outer = indentAt(text, obj.offset);
    return splice(text, obj.offset, obj.length, `{${style.eol}${outer}${style.unit}${entry}${style.eol}${outer}}`);
  }
  return splice(text, last.offset + last.length, 0, `,${style.eol}${indentAt(text, last.offset)}${entry}`);
}

/** Appends to the array at `path`, on the same line when the array is written on one line. */
export function appendToArray(text: string, path: JSONPath, value: unknown, style: JsoncStyle): string {
  const arr = node(text, path);
  if (!arr || arr.type !== "array") throw new MirrorKitError("MK_INTERNAL", `appendToArray: no array at ${JSON.stringify(path)}`);
  const items = arr.children ?? [];
  const last = items[items.length - 1];
  if (!last) return splice(text, arr.offset, arr.length, inline([value]));
  const oneLine = !text.slice(arr.offset, arr.offset + arr.length).includes("\n");
  const sep = oneLine ? ", " : `,${style.eol}${indentAt(text, last.offset)}`;
  return splice(text, last.offset + last.length, 0, sep + inline(value));
}

/** Offset of the key of the property at `path` (which must exist), e.g. where a comment about it goes. */
export function propertyStart(text: string, path: JSONPath): number {
  const value = node(text, path);
  const property = value?.parent;
  if (!property || property.type !== "property") throw new Error(`propertyStart: no property at ${JSON.stringify(path)}`);
  return property.offset;
}
