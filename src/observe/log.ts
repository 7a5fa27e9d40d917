// Structured logs (pino): JSON lines, or human-readable ones (pino-pretty) on a terminal. Credentials
// never reach a log line: Authorization headers and passwords are redacted by path, URLs via redactUrl.
import { createRequire } from "node:module";
import { pino, type Logger, type DestinationStream } from "pino";
import type { PrettyOptions } from "pino-pretty";

export type { Logger };
export type LogFormat = "auto" | "json" | "pretty";

/**
 * A logger writing to `destination` (default stdout). "auto" is pretty when stdout is a terminal and
 * JSON otherwise, so `docker logs` and log shippers get one JSON object a line. Redaction happens
 * before formatting, so it holds in both formats.
 */
export function createLogger(level: string, destination?: DestinationStream, format: LogFormat = "json"): Logger {
  const options = {
    level,
    base: { service: "mirror-kit" },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ["authorization", "*.authorization", "headers.authorization", "password", "*.password", "token", "*.token"],
      censor: "[redacted]",
    },
  };
  const tty = destination === undefined && process.stdout.isTTY === true;
  if (format === "pretty" || (format === "auto" && tty)) return pino(options, prettyStream(tty, destination));
  return pino(options, destination);
}

/** pino-pretty is loaded only when asked for: JSON logging (the container's) does not carry it. */
function prettyStream(colorize: boolean, destination?: DestinationStream): DestinationStream {
  const pretty = createRequire(import.meta.url)("pino-pretty") as (o: PrettyOptions) => DestinationStream;
  return pretty({
    colorize,
    translateTime: "SYS:HH:MM:ss.l",
    ignore: "pid,hostname,service",
    singleLine: true,
    sync: true,
    ...(destination ? { destination: destination as NodeJS.WritableStream } : {}),
  });
}
