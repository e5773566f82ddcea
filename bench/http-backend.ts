/** The HTTP backend of the HTTP rows when nginx is absent: 1 KiB answers, keep-alive. `node http-backend.ts <port>` */
import http from 'node:http';

const BODY = Buffer.alloc(1024, 0x61);
http
  .createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length }).end(BODY);
  })
  .listen(Number(process.argv[2]), '127.0.0.1', () => console.log('ready'));
process.on('SIGTERM', () => process.exit(0));
