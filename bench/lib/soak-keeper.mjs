// The service side of the soak: a LeaseKeeper holding `leases` leases through a daemon's
// HTTP API (HttpLeaseClient). Prints {ready} once they are held; on SIGTERM prints
// {renewed, lost, errors} and stops (releasing them).
import { HttpLeaseClient, LeaseKeeper } from '../../dist/index.js';

const { url, token, leases, ttlMs } = JSON.parse(process.argv[2]);
const client = new HttpLeaseClient({ url, token });
let renewed = 0;
let lost = 0;
let errors = 0;
const keeper = new LeaseKeeper({ leases: client, ttlMs, holder: `soak-keeper-${process.pid}`, onLost: () => lost++, onError: () => errors++ });
keeper.on('renewed', () => renewed++);
for (let i = 0; i < leases; i++) await keeper.acquire(`soak-http-${process.pid}-${i}`);
console.log(JSON.stringify({ ready: true }));
const keepAlive = setInterval(() => undefined, 60_000);
process.on('SIGTERM', async () => {
  clearInterval(keepAlive);
  await keeper.stop();
  console.log(JSON.stringify({ renewed, lost, errors }));
  process.exit(0);
});
