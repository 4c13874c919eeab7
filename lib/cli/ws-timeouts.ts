#!/usr/bin/env node
/**
 * The `ws-timeouts` command, the package's `bin`: `npx ws-timeouts check-env`.
 * Exit codes: 0 valid, 1 invalid configuration, 2 bad usage.
 */
import { checkEnv } from './check-env.js';

const USAGE = `Usage: ws-timeouts check-env

  check-env   Resolve the WS_* variables of this environment as ws-timeouts does and print each
              value, its unit and where it came from (default, profile, variable or derived).
              Exits 1 naming every problem, 0 when the configuration is valid.
`;

// A reader that stops early (`npx ws-timeouts check-env | head`) closes the pipe: that is not a failure.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(process.exitCode ?? 0);
});

const args = process.argv.slice(2);
if (args.length === 1 && args[0] === 'check-env') {
  process.exitCode = checkEnv(process.env, process.stdout, process.stderr);
} else if (args.length === 1 && (args[0] === '--help' || args[0] === '-h' || args[0] === 'help')) {
  process.stdout.write(USAGE);
} else {
  process.stderr.write(`${args.length === 0 ? 'No command given.' : `Unknown arguments: ${args.join(' ')}`}\n\n${USAGE}`);
  process.exitCode = 2;
}
