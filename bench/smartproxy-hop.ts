/** One SmartProxy hop in its own process for npm run bench / soak: `node smartproxy-hop.ts '<options JSON>'`. */
import { SmartProxy } from '../ts/index.js';

const proxy = new SmartProxy(JSON.parse(process.argv[2]));
await proxy.start();
console.log('ready');
// The parent asks for statistics on stdin ("stats\n") and reads one JSON line back.
process.stdin.setEncoding('utf8');
process.stdin.on('data', (text: string) => {
  for (const line of text.split('\n')) if (line.trim() === 'stats') console.log(JSON.stringify(proxy.getStatistics()));
});
process.on('SIGTERM', () => {
  void proxy.stop().then(() => process.exit(0));
});
