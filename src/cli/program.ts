// mirror-kit command line: one yargs program, each command an options builder
// plus a handler that calls a plain, injectable implementation (see commands.ts). main.ts loads it.
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { commands } from "./commands.js";

const cli = yargs(hideBin(process.argv))
  .scriptName("mirror-kit")
  .usage("$0 <command> [options]")
  .strict()
  .demandCommand(1, `name a command: ${commands.map((c) => String(c.command).split(" ")[0]).join(", ")}`)
  .help()
  .version()
  // A failing command prints one clear line and exits non-zero; usage text only for usage errors.
  .fail((msg, err) => {
    if (err) {
      process.stderr.write(`mirror-kit: ${err.message}\n`);
    } else {
      process.stderr.write(`mirror-kit: ${msg}\nRun 'mirror-kit --help' for usage.\n`);
    }
    process.exit(2);
  });

for (const command of commands) cli.command(command);

await cli.parseAsync();
