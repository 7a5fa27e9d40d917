// The list of mirror-kit commands; each module exports a yargs CommandModule.
import type { CommandModule } from "yargs";
import { serveCommand } from "./serve.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [serveCommand];
