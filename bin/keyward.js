#!/usr/bin/env node
// The `keyward` command. The TypeScript sources are compiled into dist/ by `npm install` (prepare).
import { runCli } from "../dist/cli/main.js";

await runCli(process.argv);
