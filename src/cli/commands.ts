// The list of mirror-kit commands; each module exports a yargs CommandModule.
import type { CommandModule } from "yargs";
import { exportCommand, importCommand } from "./bundle.js";
import { pruneCommand, refreshCommand, rmCommand } from "./cache.js";
import { certCommand } from "./cert.js";
import { doctorCommand } from "./doctor.js";
import { healthcheckCommand } from "./healthcheck-command.js";
import { initCommand } from "./init.js";
import { prefetchCommand } from "./prefetch.js";
import { serveCommand } from "./serve.js";
import { lsCommand, statusCommand } from "./status.js";
import { downCommand, imageCommand, upCommand } from "./up.js";
import { wireCommand } from "./wire.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [serveCommand, initCommand, wireCommand, upCommand, downCommand, imageCommand, prefetchCommand, exportCommand, importCommand, rmCommand, pruneCommand, refreshCommand, certCommand, statusCommand, lsCommand, doctorCommand, healthcheckCommand];
