/**
 * Every child process the suite starts is tracked here, so a failing case never leaves one
 * behind: the root hook kills what is left after the run, and so does the process 'exit'.
 */
import type { ChildProcess } from 'node:child_process';

const children = new Set<ChildProcess>();

/** Tracks `child` until it exits. With `group`, the whole process group is killed (npm → tsx → node). */
export function track<T extends ChildProcess>(child: T, { group = false } = {}): T {
  children.add(child);
  (child as { killGroup?: boolean }).killGroup = group;
  child.once('exit', () => children.delete(child));
  return child;
}

/** SIGKILLs `child` (and its group when tracked so) if it still runs. */
export function kill(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    if ((child as { killGroup?: boolean }).killGroup && child.pid) process.kill(-child.pid, 'SIGKILL');
    else child.kill('SIGKILL');
  } catch {
    // already gone
  }
}

/** Kills every tracked child still running; returns how many there were. */
export function killAll(): number {
  const left = [...children];
  for (const child of left) kill(child);
  return left.length;
}

process.once('exit', () => void killAll());
