/** One SmartProxy hop in its own process for npm run bench / soak: `node smartproxy-hop.ts '<options JSON>'`. */
import fs from 'node:fs';
import { SmartProxy } from '../ts/index.js';

const proxy = new SmartProxy(JSON.parse(process.argv[2]));
await proxy.start();
console.log('ready');
// The parent asks on stdin ("stats\n") and reads one JSON line back: statistics, memory, open fds.
process.stdin.setEncoding('utf8');
process.stdin.on('data', (text: string) => {
  for (const line of text.split('\n')) {
    if (line.trim() !== 'stats') continue;
    global.gc?.();
    const report = { stats: proxy.getStatistics(), memory: process.memoryUsage(), fds: fs.readdirSync('/proc/self/fd').length };
    console.log(JSON.stringify(report));
  }
});
process.on('SIGTERM', () => {
  void proxy.stop().then(() => process.exit(0));
});
