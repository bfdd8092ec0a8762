// Regenerates croner11_lists.json: fire times of croner 11's list forms of
// L, W and # computed by croner 11 itself (see README.md in this folder).
//   npm install --no-save --prefix .cache/croner11 croner@11
//   NODE_PATH=.cache/croner11/node_modules node tests/data/croner11_lists.js > tests/data/croner11_lists.json
const {Cron} = require('croner');
const version = require('croner/package.json').version;

const STARTS = ['2026-01-01T00:00:00Z', '2026-07-15T12:00:00Z', '2027-12-20T00:00:00Z'];
const CASES = [
  // day-of-month lists with L and nW
  ['0 0 15,L * *', 'Etc/UTC'],
  ['0 0 1W,15W * *', 'Etc/UTC'],
  ['0 0 1,L * *', 'Etc/UTC'],
  ['0 0 L,1W * *', 'Etc/UTC'],
  ['0 0 1-3,L * *', 'Etc/UTC'],
  ['30 9 10W,20W,L * MON-FRI', null],  // refused by taskpack: the other day field is set
  ['30 9 10W,20W,L 2,8 *', 'Etc/UTC'],
  ['*/30 0 12 1W,L * *', 'Etc/UTC'],
  // day-of-week lists and ranges of nth and last weekdays
  ['0 0 * * MON-FRIL', 'Etc/UTC'],
  ['0 0 * * MONL,FRIL', 'Etc/UTC'],
  ['0 0 * * SAT-SUN#L,SUN#1', 'Etc/UTC'],
  ['0 0 * * SUN-MON#3,MON-TUE#1', 'Etc/UTC'],
  ['0 0 * * THU-FRI#L', 'Etc/UTC'],
  ['0 0 * * MON,FRIL', 'Etc/UTC'],
  ['0 0 * * 1-5L', 'Etc/UTC'],
  ['0 0 * * 5-7L', 'Etc/UTC'],
  ['0 0 * * */2L', 'Etc/UTC'],
  ['0 0 * * 1-5/2#1', 'Etc/UTC'],
  ['0 0 * * MON#1,MON#3', 'Etc/UTC'],
  ['0 0 * * SUN#5,SUN#L', 'Etc/UTC'],
  ['0 8 * 3,10 SAT-SUNL', 'Etc/UTC'],
  // DST: the last Sundays of March and October are Europe's change days
  ['30 2 * * SAT-SUNL', 'Europe/Berlin'],
  ['30 2 * 3,10 SUNL,SUN#1', 'Europe/Berlin'],
  ['30 2 L,15 3,10 *', 'Europe/Berlin'],
  ['0 1 * * FRI-SUN#L', 'America/New_York'],
];

const results = CASES.map(([pattern, timezone]) => {
  const runs = {};
  for (const start of STARTS) {
    try {
      runs[start] = new Cron(pattern, {timezone: timezone || 'Etc/UTC'})
        .nextRuns(6, new Date(start)).map(d => d.toISOString().replace('.000Z', 'Z'));
    } catch (e) {
      runs[start] = 'error: ' + e.message;
    }
  }
  return {pattern, timezone, runs};
});
console.log(JSON.stringify({
  engine: `croner ${version}: new Cron(pattern, {timezone}).nextRuns(6, start), under Node ${process.version}`,
  results,
}, null, 1));
