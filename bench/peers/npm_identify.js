// N identifications with the `bankid` npm package (3.2.1), CONCURRENCY at a time, through its
// own authenticateAndCollect (collecting every POLL seconds via its refreshInterval).
//
// The package hard-codes BankID's hosts and has no phone/auth: its axios instance's baseURL is
// pointed at the simulator and plain `auth` (with requirement.personalNumber) is used; the
// simulator is told to run the same steps for these numbers whichever endpoint starts them.
//
// usage: node npm_identify.js BASE_URL CERTS_DIR PNR_FILE CONCURRENCY POLL_SECONDS
'use strict';
const fs = require('fs');
const path = require('path');
const { BankIdClientV6 } = require(path.join(__dirname, 'node_modules', 'bankid'));

async function main() {
  const [base, certs, pnrFile, conc, poll] = process.argv.slice(2);
  const client = new BankIdClientV6({
    production: false,
    pfx: path.join(certs, 'client.p12'),
    passphrase: 'qwerty123',
    ca: path.join(certs, 'ca.pem'),
    refreshInterval: Math.round(parseFloat(poll) * 1000),
    qrEnabled: false,
  });
  client.axios.defaults.baseURL = base;
  const pnrs = fs.readFileSync(pnrFile, 'utf8').split('\n').map((s) => s.trim()).filter(Boolean);
  let next = 0;
  let ok = 0;
  async function worker() {
    while (next < pnrs.length) {
      const pnr = pnrs[next++];
      try {
        const r = await client.authenticateAndCollect({
          endUserIp: '127.0.0.1',
          requirement: { personalNumber: pnr },
        });
        if (r.status === 'complete') ok++;
      } catch (e) {
        process.stderr.write(`identification failed: ${e && (e.code || e.message || e.status)}\n`);
      }
    }
  }
  await Promise.all(Array.from({ length: parseInt(conc, 10) }, worker));
  console.log(`complete=${ok}`);
  process.exit(ok === pnrs.length ? 0 : 1);
}
main();
