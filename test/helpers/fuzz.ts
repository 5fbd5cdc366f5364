import fc from "fast-check";

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
