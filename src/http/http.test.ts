// Range rules, shared by GET and HEAD: only bytes are honoured, other units get the whole blob.
import { describe, expect, it } from "vitest";
import { byteRange } from "./blob-response.js";
import { matchRoute } from "./routes.js";

describe("Range on a 100-byte blob", () => {
  it.each([
    ["no header", undefined, { status: 200, start: 0, end: 99 }],
    ["one byte range", "bytes=10-19", { status: 206, start: 10, end: 19, contentRange: "bytes 10-19/100" }],
    ["an open range", "bytes=90-", { status: 206, start: 90, end: 99, contentRange: "bytes 90-99/100" }],
    ["a suffix", "bytes=-5", { status: 206, start: 95, end: 99, contentRange: "bytes 95-99/100" }],
    ["another unit is ignored", "items=0-5", { status: 200, start: 0, end: 99 }],
    ["another unit past the end is ignored too", "items=500-600", { status: 200, start: 0, end: 99 }],
    ["a malformed header is ignored", "bytes=abc", { status: 200, start: 0, end: 99 }],
    ["several ranges get the whole body", "bytes=0-1,50-60", { status: 200, start: 0, end: 99 }],
  ])("%s", (_what, header, expected) => {
    expect(byteRange(header, 100)).toEqual(expected);
  });

  it("refuses a byte range past the end with 416 and Content-Range: bytes */size", () => {
    expect(() => byteRange("bytes=100-", 100)).toThrowError(expect.objectContaining({ code: "RANGE_INVALID", status: 416, headers: { "content-range": "bytes */100" } }));
  });
});

describe("routes", () => {
  it.each([["/favicon.ico"], ["/v2/x"], ["/v3/"], ["/v2/x/nothing/here"], ["/ui/../x"], ["/api/v1/nothing"]])("%s is unknown", (path) => {
    expect(matchRoute(path).kind).toBe("unknown");
  });

  it.each([
    ["/", "dashboard"],
    ["/ui/app.js", "ui"],
    ["/api/v1/status", "status"],
    ["/api/v1/events", "status-events"],
    ["/api/v1/repositories", "repositories"],
  ])("%s is the mirror's own %s route", (path, kind) => {
    expect(matchRoute(path).kind).toBe(kind);
  });
});
