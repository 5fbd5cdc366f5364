import { describe, expect, it } from "vitest";
import { GenerationCache } from "../../src/engine/verify-cache.js";

describe("GenerationCache", () => {
  it("keeps every entry used within the last generation of insertions", () => {
    const cache = new GenerationCache<number>(2);
    cache.set("a", 1);
    cache.set("b", 2);
    cache.set("c", 3); // over the generation: a, b, c become the previous one
    expect(cache.get("a")).toBe(1); // promoted
    cache.set("d", 4);
    cache.set("e", 5); // a, d, e overflow the current one: b and c are dropped
    expect([cache.get("a"), cache.get("b"), cache.get("c"), cache.get("d"), cache.get("e")]).toEqual([1, undefined, undefined, 4, 5]);
  });

  it("a working set that fits one generation is never moved or dropped", () => {
    const dropped: number[] = [];
    const cache = new GenerationCache<number>(3, (value) => dropped.push(value));
    for (const [i, key] of ["a", "b", "c"].entries()) cache.set(key, i);
    for (let round = 0; round < 10; round++) for (const key of ["a", "b", "c"]) expect(cache.get(key)).toBeDefined();
    expect(dropped).toEqual([]);
  });

  it("never holds more than two generations, whatever is inserted", () => {
    const cache = new GenerationCache<number>(100);
    for (let i = 0; i < 10_000; i++) cache.set(`k${i}`, i);
    expect(cache.size).toBeLessThanOrEqual(202);
  });

  it("reports each entry dropped with an old generation, and not deleted ones", () => {
    const dropped: number[] = [];
    const cache = new GenerationCache<number>(1, (value) => dropped.push(value));
    cache.set("a", 1);
    cache.set("b", 2); // previous: a, b
    cache.delete("b");
    cache.set("c", 3);
    cache.set("d", 4); // previous a is dropped
    expect(dropped).toEqual([1]);
  });
});
