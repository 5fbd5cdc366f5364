import { Writable } from "node:stream";
import { createLogger } from "../../src/service/logger.js";

/** A service logger whose every line is kept in `lines`, for tests that read what was logged. */
export function captureLogs(level = "info") {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { lines, logger: createLogger(level, stream) };
}
