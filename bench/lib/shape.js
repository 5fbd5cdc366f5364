// The keys' shape for the console benchmarks (bench/key-search.js, bench/console.js): a seeded
// generator, so every run and every store gets the same names, owners, environments and states.
import { buildKeys } from "./seed.js";

const DAY = 86_400_000;
const WORDS = [
  "billing",
  "search",
  "ingest",
  "mobile",
  "partner",
  "acme",
  "globex",
  "initech",
  "umbrella",
  "stark",
  "wayne",
  "worker",
  "cron",
  "backend",
  "frontend",
  "staging",
  "reporting",
  "export",
  "sync",
  "webhook",
];

/** A seeded generator (mulberry32): the same keys' shape on every run. */
export function generator(seed) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `count` keys shaped like a real deployment's: names of two words and a number, 20,000 users
 * and 2,000 applications, half production, created over about two years, 30% with an expiry
 * (some past), 10% revoked, 1% disabled, 0.05% awaiting pickup.
 */
export function seedRecords(count, now) {
  const rnd = generator(21);
  const pick = (list) => list[Math.floor(rnd() * list.length)];
  return buildKeys(count).map(({ record }, i) => {
    record.name = `${pick(WORDS)} ${pick(WORDS)} ${i}`;
    record.owner =
      rnd() < 0.7
        ? { type: "user", id: `user${Math.floor(rnd() * 20_000)}` }
        : { type: "application", id: `app${Math.floor(rnd() * 2_000)}` };
    record.environment = rnd() < 0.5 ? "sandbox" : "production";
    record.ref = `${record.environment === "production" ? "kw_live_" : "kw_test_"}…${record.ref.slice(-4)}`;
    record.createdAt = now - Math.floor(((count - i) * 2 * 365 * DAY) / count);
    record.updatedAt = record.createdAt;
    if (rnd() < 0.3) record.expiresAt = now + Math.floor((rnd() * 425 - 60) * DAY);
    if (rnd() < 0.1) record.revokedAt = record.createdAt + 60_000;
    else if (rnd() < 0.011) record.enabled = false;
    else if (rnd() < 0.0006) record.awaitingPickup = true;
    return record;
  });
}
