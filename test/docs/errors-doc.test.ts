import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { ERROR_REGISTRY } from "../../src/core/errors.js";
import { OUTCOME_CODES, OUTCOME_HTTP_STATUS } from "../../src/core/outcomes.js";

const doc = readFileSync(join(import.meta.dirname, "..", "..", "docs", "errors.md"), "utf8");

it("docs/errors.md documents every registered code with its status and how to solve it", () => {
  const documented = [...doc.matchAll(/^## ([A-Z_]+)$/gm)].map((m) => m[1]);
  expect(documented.sort()).toEqual(Object.keys(ERROR_REGISTRY).sort());
  for (const [code, d] of Object.entries(ERROR_REGISTRY)) {
    const section = doc.slice(doc.indexOf(`## ${code}\n`)).split("\n## ")[0] as string;
    expect(section, code).toContain(`- Status: ${d.status}`);
    expect(section, code).toContain(`- How to solve: ${d.solve}`);
  }
});

it("every denial outcome is a registered error with the status of the outcome table", () => {
  for (const code of OUTCOME_CODES) {
    if (code === "VALID") continue;
    expect(ERROR_REGISTRY[code].status, code).toBe(OUTCOME_HTTP_STATUS[code]);
  }
});
