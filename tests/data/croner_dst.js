// Regenerates croner_dst.json: fire times across daylight-saving changes
// computed by croner 10.0.1 (Nitro's) and croner 11 (see README.md here).
// Run from the repository root after installing both:
//   npm install --no-save --prefix .cache/croner10 croner@10.0.1
//   npm install --no-save --prefix .cache/croner11 croner@11
//   node tests/data/croner_dst.js > tests/data/croner_dst.json
const path = require('path');
const engines = {
  croner10: path.resolve('.cache/croner10/node_modules/croner'),
  croner11: path.resolve('.cache/croner11/node_modules/croner'),
};
const CASES = [
  // [pattern, timezone, start, what it shows]
  ['30 2 * * *', 'Europe/Berlin', '2026-03-28T00:00:00Z', 'fixed time in the spring-forward gap'],
  ['0 2 * * *', 'America/New_York', '2026-03-07T12:00:00Z', 'fixed time in the spring-forward gap'],
  ['30 2 * * *', 'Europe/Berlin', '2026-10-24T00:00:00Z', 'fixed time repeated at fall-back'],
  ['0 1 * * *', 'America/New_York', '2026-10-31T12:00:00Z', 'fixed time repeated at fall-back'],
  ['*/30 * * * *', 'Europe/Berlin', '2026-03-29T00:00:00Z', 'interval through spring-forward'],
  ['*/30 * * * *', 'Europe/Berlin', '2026-10-25T00:00:00Z', 'interval through fall-back'],
  ['15 * * * *', 'America/New_York', '2026-11-01T04:00:00Z', 'interval through fall-back'],
];
const out = {};
for (const [name, dir] of Object.entries(engines)) {
  const {Cron} = require(dir);
  out[name] = `croner ${require(dir + '/package.json').version}`;
}
const results = CASES.map(([pattern, timezone, start, shows]) => {
  const row = {pattern, timezone, start, shows};
  for (const [name, dir] of Object.entries(engines)) {
    const {Cron} = require(dir);
    row[name] = new Cron(pattern, {timezone}).nextRuns(5, new Date(start))
      .map(d => d.toISOString().replace('.000Z', 'Z'));
  }
  return row;
});
console.log(JSON.stringify({engines: out, call: 'new Cron(pattern, {timezone}).nextRuns(5, start)',
                            node: process.version, results}, null, 1));
