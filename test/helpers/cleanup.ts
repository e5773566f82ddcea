import { after } from 'node:test';

/**
 * Registers an after-all hook for the calling test file and returns the function that queues
 * cleanups for it; they run in reverse order (last started, first stopped), even when tests fail.
 */
export function cleanupAfterAll(): (...fns: Array<() => unknown>) => void {
  const queue: Array<() => unknown> = [];
  after(async () => {
    for (const fn of queue.reverse()) await fn();
  });
  return (...fns) => {
    queue.push(...fns);
  };
}
