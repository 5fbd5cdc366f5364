import { describe, expect, it } from "vitest";
import { lazyChildLoggerFactory } from "../../src/service/logger.js";
import { captureLogs } from "../helpers/logs.js";

const capture = () => captureLogs("info");

describe("lazy per-request child logger", () => {
  it("a request's log line carries its bindings and keeps the redaction", () => {
    const { lines, logger } = capture();
    const child = lazyChildLoggerFactory(logger, { reqId: "req-1" }, {});
    child.info({ headers: { authorization: "Bearer secret" } }, "hello");
    const line = JSON.parse(lines[0] as string);
    expect(line).toMatchObject({ reqId: "req-1", msg: "hello" });
    expect(JSON.stringify(line)).not.toContain("secret");
  });

  it("builds no pino child until the request logs", () => {
    const { logger } = capture();
    let children = 0;
    const counting = new Proxy(logger, {
      get: (target, property, receiver) =>
        property === "child"
          ? (...args: Parameters<typeof logger.child>) => {
              children++;
              return target.child(...args);
            }
          : Reflect.get(target, property, receiver),
    });
    const child = lazyChildLoggerFactory(counting, { reqId: "req-2" }, {});
    expect(typeof child.info).toBe("function");
    expect(children).toBe(0);
    child.warn("now");
    expect(children).toBe(1);
  });
});
