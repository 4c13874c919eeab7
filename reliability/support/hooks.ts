/**
 * Root hooks of the reliability suite (`reliability/.mocharc.json` requires this file):
 * - an 'unhandledRejection' listener that fails the run;
 * - after the run, kills any child process a failed case left behind and writes RELIABILITY.md
 *   from the figures the cases recorded and the state of their tests.
 */
import { fileURLToPath } from 'node:url';
import type { Context, Suite } from 'mocha';
import { killAll } from './children.js';
import { writeReport, type CaseOutcome } from './report.js';

const REPORT = fileURLToPath(new URL('../../RELIABILITY.md', import.meta.url));

/** Every unhandled rejection seen during the run (the suite fails if there is any). */
export const unhandledRejections: string[] = [];

function onUnhandledRejection(reason: unknown): void {
  unhandledRejections.push(reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason));
}

let started = 0;

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0]!.slice(0, 160);
}

/** Tests passed/failed per top-level describe, and the first failure (a hook's too). */
function outcomes(root: Suite): Map<string, CaseOutcome> {
  const out = new Map<string, CaseOutcome>();
  const walk = (suite: Suite, into: CaseOutcome): void => {
    const internal = suite as unknown as Record<'_beforeAll' | '_beforeEach' | '_afterEach' | '_afterAll', Array<{ state?: string; err?: unknown }>>;
    const hooks = [...internal._beforeAll, ...internal._beforeEach, ...internal._afterEach, ...internal._afterAll];
    for (const hook of hooks) {
      if (hook.state === 'failed' && into.error === undefined) into.error = firstLine(hook.err);
    }
    for (const test of suite.tests) {
      if (test.state === 'passed') into.passed++;
      else if (test.state === 'failed') {
        into.failed++;
        into.error ??= firstLine(test.err);
      }
    }
    for (const child of suite.suites) walk(child, into);
  };
  for (const suite of root.suites) {
    const outcome: CaseOutcome = { passed: 0, failed: 0 };
    walk(suite, outcome);
    out.set(suite.title, outcome);
  }
  return out;
}

export const mochaHooks = {
  beforeAll(): void {
    started = Date.now();
    process.on('unhandledRejection', onUnhandledRejection);
  },
  afterAll(this: Context): void {
    process.off('unhandledRejection', onUnhandledRejection);
    const leftover = killAll();
    let root = this.test!.parent!;
    while (root.parent) root = root.parent;
    writeReport(REPORT, outcomes(root), Date.now() - started, unhandledRejections);
    console.log(`\n  RELIABILITY.md written (${Math.round((Date.now() - started) / 1000)} s)${leftover ? `; killed ${leftover} leftover child process(es)` : ''}`);
    if (unhandledRejections.length > 0) {
      throw new Error(`${unhandledRejections.length} unhandled rejection(s) during the reliability suite: ${unhandledRejections.join(' / ')}`);
    }
  },
};
