/**
 * The convergence probe, on its own thread (so the control plane's event loop in the main thread
 * is not slowed by it): sends absolute-URI requests through the sidecar back to back on one
 * keep-alive connection until one gets the verdict it waits for, and reports when that response
 * arrived (CLOCK_MONOTONIC ms, the clock the main thread reads too).
 */
import * as http from 'node:http';
import { parentPort } from 'node:worker_threads';

export type ProbeCommand = { cmd: 'probe'; proxy: { host: string; port: number }; url: string; want: number; timeoutMs: number } | { cmd: 'stop' };
export type ProbeEvent =
  | { event: 'probing'; status: number }
  | { event: 'verdict'; at: number; requests: number; errors: number }
  | { event: 'timeout'; requests: number; errors: number; last: number };

const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function once(proxy: { host: string; port: number }, url: string): Promise<number> {
  const target = new URL(url);
  return new Promise((resolve) => {
    const req = http.request({ host: proxy.host, port: proxy.port, method: 'GET', path: url, setHost: false, headers: { host: target.host }, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(-1));
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(-1));
    req.end();
  });
}

async function probe(c: Extract<ProbeCommand, { cmd: 'probe' }>): Promise<void> {
  const deadline = nowMs() + c.timeoutMs;
  let requests = 0;
  let errors = 0;
  let last = await once(c.proxy, c.url);
  requests += 1;
  parentPort!.postMessage({ event: 'probing', status: last } satisfies ProbeEvent);
  for (;;) {
    last = await once(c.proxy, c.url);
    requests += 1;
    if (last === c.want) {
      parentPort!.postMessage({ event: 'verdict', at: nowMs(), requests, errors } satisfies ProbeEvent);
      return;
    }
    if (last < 0) errors += 1;
    if (nowMs() > deadline) {
      parentPort!.postMessage({ event: 'timeout', requests, errors, last } satisfies ProbeEvent);
      return;
    }
  }
}

parentPort!.on('message', (c: ProbeCommand) => {
  if (c.cmd === 'probe') void probe(c);
  else {
    agent.destroy();
    process.exit(0);
  }
});
