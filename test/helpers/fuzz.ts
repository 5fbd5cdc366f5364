import fc from "fast-check";
import { computeKeyChecksum } from "../../src/core/key-format.js";

/**
 * One fast-check seed per test file run, printed so any failure can be replayed: run again with
 * `FC_SEED=<seed>` (fast-check also prints the failing path; pass it as `FC_PATH` to replay only it).
 */
export const FUZZ_SEED: number = process.env.FC_SEED ? Number(process.env.FC_SEED) : Math.floor(Math.random() * 0x7fffffff);
const FUZZ_PATH = process.env.FC_PATH;

let announced = false;
function announce(): void {
  if (announced) return;
  announced = true;
  console.info(`fast-check seed ${FUZZ_SEED} (replay with FC_SEED=${FUZZ_SEED})`);
}

function withSeed(error: unknown): never {
  if (error instanceof Error) error.message = `[FC_SEED=${FUZZ_SEED}] ${error.message}`;
  throw error;
}

const parameters = <T>(extra: fc.Parameters<T>): fc.Parameters<T> => ({
  seed: FUZZ_SEED,
  verbose: 1,
  ...(FUZZ_PATH ? { path: FUZZ_PATH } : {}),
  ...extra,
});

/** `fc.assert` with the file's seed: failures name the seed that reproduces them. */
export function fuzz<T>(property: fc.IProperty<T>, extra: fc.Parameters<T> = {}): void {
  announce();
  try {
    fc.assert(property, parameters(extra));
  } catch (error) {
    withSeed(error);
  }
}

/** The same for async properties (real HTTP). */
export async function fuzzAsync<T>(property: fc.IAsyncProperty<T>, extra: fc.Parameters<T> = {}): Promise<void> {
  announce();
  try {
    await fc.assert(property, parameters(extra));
  } catch (error) {
    withSeed(error);
  }
}

const pad = (value: number, width: number) => String(value).padStart(width, "0");

/**
 * Text for timestamp parameters: valid RFC 3339 instants, near misses built field by field
 * (leap seconds, day 31 of short months, hour 24, odd offsets and separators, long fractions),
 * and arbitrary strings.
 */
export const timestampText: fc.Arbitrary<string> = fc.oneof(
  fc
    .date({ min: new Date("0001-01-01T00:00:00Z"), max: new Date("9999-12-31T23:59:59.999Z"), noInvalidDate: true })
    .map((d) => d.toISOString()),
  fc
    .record({
      year: fc.integer({ min: 0, max: 10_000 }),
      month: fc.integer({ min: 0, max: 13 }),
      day: fc.integer({ min: 0, max: 32 }),
      hour: fc.integer({ min: 0, max: 25 }),
      minute: fc.integer({ min: 0, max: 61 }),
      second: fc.integer({ min: 0, max: 61 }),
      fraction: fc.option(fc.stringMatching(/^[0-9]{0,12}$/), { nil: undefined }),
      separator: fc.constantFrom("T", "t", " ", "", "_"),
      zone: fc.constantFrom("Z", "z", "", "+00:00", "-00:00", "+23:59", "-23:59", "+24:00", "+05:60", "+0530", "+5:30", "UTC"),
    })
    .map(
      (t) =>
        `${pad(t.year, 4)}-${pad(t.month, 2)}-${pad(t.day, 2)}${t.separator}${pad(t.hour, 2)}:${pad(t.minute, 2)}:${pad(t.second, 2)}` +
        `${t.fraction === undefined ? "" : `.${t.fraction}`}${t.zone}`,
    ),
  fc.constantFrom(
    "2026-12-31T23:59:60Z",
    "2026-06-30T23:59:60.999+00:00",
    "1970-01-01T00:00:00Z",
    "275760-09-13T00:00:00Z",
    "+275760-09-13T00:00:00.000Z",
    "-000001-01-01T00:00:00Z",
    "2026-01-01T00:00:00.000000000000001Z",
  ),
  fc.string({ maxLength: 48 }),
  fc.string({ unit: "binary", maxLength: 32 }),
);

const base62 = (length: number) =>
  fc.string({
    unit: fc.constantFrom(..."0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
    minLength: length,
    maxLength: length,
  });

/** Well-formed keys of any prefix and marker, checksum included (what must never be echoed or stored). */
export const keyShapedText: fc.Arbitrary<string> = fc
  .record({ prefix: fc.stringMatching(/^[a-z][a-z0-9]{1,15}$/), marker: fc.constantFrom("live", "test"), secret: base62(32) })
  .map(({ prefix, marker, secret }) => {
    const body = `${prefix}_${marker}_${secret}`;
    return body + computeKeyChecksum(body);
  });

/**
 * `X-Request-Id` values a client can send (latin1, no CR, LF or NUL): plain ids, keys alone or
 * inside an otherwise valid id, truncated keys, overlong ids, spaces and high bytes.
 */
export const requestIdText: fc.Arbitrary<string> = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/),
  fc.uuid(),
  keyShapedText,
  fc
    .tuple(fc.stringMatching(/^[A-Za-z0-9.-]{0,8}$/), keyShapedText, fc.stringMatching(/^[A-Za-z0-9._-]{0,8}$/))
    .map((parts) => parts.join("")),
  keyShapedText.chain((key) => fc.integer({ min: 8, max: key.length }).map((n) => key.slice(0, n))),
  fc.stringMatching(/^[A-Za-z0-9._-]{65,200}$/),
  fc.string({ maxLength: 80 }),
  fc.uint8Array({ maxLength: 80 }).map((bytes) => Buffer.from(bytes.filter((b) => b === 9 || (b >= 32 && b !== 127))).toString("latin1")),
);

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((parts) => parts.join("."));

/**
 * Webhook URLs to register: public-looking ones, IP literals of every range and IPv6 form that
 * embeds IPv4 (mapped, compatible, NAT64, 6to4), `localhost` spellings, and junk.
 */
export const webhookUrlText: fc.Arbitrary<string> = fc.oneof(
  fc.webUrl({ validSchemes: ["http", "https", "ftp", "javascript", "file"], withQueryParameters: true, withFragments: true }),
  fc
    .tuple(
      fc.constantFrom("http", "https"),
      fc.oneof(
        ipv4,
        fc.constantFrom(
          "127.0.0.1",
          "10.1.2.3",
          "172.16.0.1",
          "192.168.1.1",
          "169.254.169.254",
          "100.64.0.1",
          "0.0.0.0",
          "224.0.0.1",
          "255.255.255.255",
        ),
        fc.constantFrom("127.1", "0x7f.1", "2130706433", "017700000001", "127.0.0.1.", "0"),
        fc
          .oneof(
            fc.ipV6(),
            ipv4.map((v4) => `::ffff:${v4}`),
            ipv4.map((v4) => `::${v4}`),
            ipv4.map((v4) => `64:ff9b::${v4}`),
          )
          .map((v6) => `[${v6}]`),
        fc.constantFrom(
          "[::1]",
          "[::]",
          "[::127.0.0.1]",
          "[::ffff:127.0.0.1]",
          "[fe80::1]",
          "[fc00::1]",
          "[ff02::1]",
          "[2002:7f00:1::1]",
          "[64:ff9b::7f00:1]",
        ),
        fc.constantFrom("localhost", "LOCALHOST", "localhost.", "localhost..", "a.localhost", "A.LocalHost.", "%6cocalhost", "."),
        fc.domain(),
      ),
      fc.option(fc.integer({ min: 0, max: 70_000 }), { nil: undefined }),
      fc.webPath(),
    )
    .map(([scheme, host, port, path]) => `${scheme}://${host}${port === undefined ? "" : `:${port}`}${path}`),
  fc.string({ maxLength: 100 }),
);
