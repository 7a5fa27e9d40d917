#!/usr/bin/env node
// `mirror-kit healthcheck` without the rest of the CLI: what the image's HEALTHCHECK and the generated
// Compose service run every few seconds (the full yargs command tree takes seconds to load on a busy host).
import { healthcheckMain } from "./healthcheck.js";

process.exit(await healthcheckMain(process.argv.slice(2)));
