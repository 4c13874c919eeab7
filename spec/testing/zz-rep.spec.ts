import { createTestClock } from '../../lib/testing/index.js';
describe('rep', () => {
  for (let r = 0; r < 4; r++) it('bare ' + r, async () => {
    let s = performance.now();
    for (let i = 0; i < 1400; i++) await new Promise((res) => setImmediate(res));
    const a = performance.now() - s;
    const t = createTestClock(0);
    const f = () => { t.clock.setTimeout(() => { t.clock.afterIo(() => {}); f(); }, 10_000); }; f();
    s = performance.now();
    await t.tickAsync(6_900_000);
    const b = performance.now() - s;
    let k = 0; s = performance.now();
    for (let i = 0; i < 1400; i++) await new Promise<void>((res) => { let n = 0; const step = () => { if (++n >= 32) res(); else queueMicrotask(step); }; queueMicrotask(step); k++; });
    console.log('setImmediate x1400', a.toFixed(1), 'fake 1380 timers', b.toFixed(1), 'hops32 x1400', (performance.now() - s).toFixed(1));
  });
});
