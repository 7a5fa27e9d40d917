// `mirror-kit healthcheck` in the yargs tree (help text, serve's flags). The image runs the same check
// through healthcheck-main.ts, which skips loading the other commands.
import type { Argv, CommandModule } from "yargs";
import { runHealthcheck } from "./healthcheck.js";
import { serveCommand, type ServeArgs } from "./serve.js";

export const healthcheckCommand: CommandModule<object, ServeArgs> = {
  command: "healthcheck",
  describe: "Exit 0 if the mirror answers /healthz (same flags, environment and config file as serve)",
  builder: (y) => (serveCommand.builder as (y: Argv) => Argv<ServeArgs>)(y as Argv) as Argv<ServeArgs>,
  handler: async (args) => {
    const result = await runHealthcheck(args, { env: process.env, stdout: process.stdout });
    process.exit(result.healthy ? 0 : 1);
  },
};
