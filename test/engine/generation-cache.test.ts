import { describe, expect, it } from "vitest";
import { GenerationCache } from "../../src/engine/verify-cache.js";

describe("GenerationCache", () => {
  it("keeps every entry used within the last generation of insertions", () => {
    const cache = new GenerationCache<number>(3);
    cache.set("a", 1);
    cache.set("b", 2);
    cache.set("c", 3); // generation full: a, b, c become the previous one
    expect(cache.get("a")).toBe(1); // promoted
    cache.set("d", 4);
    cache.set("e", 5); // a, d, e fill the current one: b and c are dropped
    expect([cache.get("a"), cache.get("b"), cache.get("c"), cache.get("d"), cache.get("e")]).toEqual([1, undefined, undefined, 4, 5]);
  });

  it("never holds more than two generations, whatever is inserted", () => {
    const cache = new GenerationCache<number>(100);
    for (let i = 0; i < 10_000; i++) cache.set(`k${i}`, i);
    expect(cache.size).toBeLessThanOrEqual(200);
  });

  it("reports each entry dropped with an old generation, and not deleted ones", () => {
    const dropped: number[] = [];
    const cache = new GenerationCache<number>(2, (value) => dropped.push(value));
    cache.set("a", 1);
    cache.set("b", 2);
    cache.delete("b");
    cache.set("c", 3);
    cache.set("d", 4);
    expect(dropped).toEqual([1]);
  });
});
