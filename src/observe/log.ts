// Structured JSON logs (pino). Credentials never reach a log line: Authorization headers and
// passwords are redacted by path, and upstream URLs are logged through redactUrl.
import { pino, type Logger, type DestinationStream } from "pino";

export type { Logger };

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "mirror-kit" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ["authorization", "*.authorization", "headers.authorization", "password", "*.password", "token", "*.token"],
        censor: "[redacted]",
      },
    },
    destination,
  );
}
