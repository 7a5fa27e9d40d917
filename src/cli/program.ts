// mirror-kit command line: one yargs program, each command an options builder
// plus a handler that calls a plain, injectable implementation (see commands.ts). main.ts loads it.
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { exitStatus } from "../errors.js";
import { loadCommands } from "./commands.js";

const commands = await loadCommands(hideBin(process.argv));
const cli = yargs(hideBin(process.argv))
  .scriptName("mirror-kit")
  .usage("$0 <command> [options]")
  .strict()
  .demandCommand(1, `name a command: ${commands.map((c) => String(c.command).split(" ")[0]).join(", ")}`)
  .help()
  .version()
  // A failing command prints one clear line; usage text only for yargs' own usage errors. Exit 2
  // for a usage error (yargs, a bad flag or setting), 1 for a runtime failure (src/errors.ts).
  .fail((msg, err) => {
    if (err) {
      process.stderr.write(`mirror-kit: ${err.message}\n`);
      process.exit(exitStatus(err));
    }
    process.stderr.write(`mirror-kit: ${msg}\nRun 'mirror-kit --help' for usage.\n`);
    process.exit(2);
  });

for (const command of commands) cli.command(command);

await cli.parseAsync();
