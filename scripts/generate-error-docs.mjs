// Writes docs/errors.md from the error registry (run after `npm run build`).
// test/docs/errors-doc.test.ts fails when the two drift apart.
import { writeFileSync } from "node:fs";
import { ERROR_REGISTRY } from "../dist/core/errors.js";

const lines = [
  "# Error codes",
  "",
  "Every error Keyward answers is an RFC 9457 problem document (`application/problem+json`):",
  '`{"type", "title", "status", "detail", "code", "request_id"}`, plus `errors` (field errors) on',
  "validation failures and `missing_scopes` on `INSUFFICIENT_SCOPE`. The `type` is `/docs/errors#<CODE>`,",
  "served by every Keyward instance. Verification outcomes (docs/errors.md) are the first codes below;",
  '`POST /v1/keys/verify` returns them as data (`{"valid": false, "code": …}`) instead of an HTTP error.',
  "",
  "This file is generated from `src/core/errors.ts` by `node scripts/generate-error-docs.mjs`.",
  "",
];
for (const [code, d] of Object.entries(ERROR_REGISTRY)) {
  lines.push(`## ${code}`, "", `- Status: ${d.status}`, `- Title: ${d.title}`, `- How to solve: ${d.solve}`, "");
}
writeFileSync(new URL("../docs/errors.md", import.meta.url), lines.join("\n"));
