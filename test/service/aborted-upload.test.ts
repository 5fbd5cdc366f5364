import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKeyOverHttp, startTestService, type TestService } from "../helpers/service.js";

// A client that goes away in the middle of its body is not an outage: no `store unavailable`
// warning and no 503, one debug line saying the client aborted (issue 19, item 9).

let service: TestService;
beforeAll(async () => {
  service = await startTestService();
});
afterAll(async () => service.close());

interface LogLine {
  level: number;
  msg: string;
  reqId?: string;
  res?: { statusCode: number };
}

const linesOf = (requestId: string): LogLine[] =>
  service.logs
    .flatMap((chunk) => chunk.split("\n"))
    .filter(Boolean)
    .map((line) => JSON.parse(line) as LogLine)
    .filter((line) => line.reqId === requestId);

/** Sends the headers and part of a JSON body, then ends the connection the given way once the server has read them. */
async function abortMidBody(requestId: string, how: "destroy" | "reset"): Promise<void> {
  const target = new URL(service.url);
  await new Promise<void>((resolve) => {
    const socket = connect(Number(target.port), target.hostname, () => {
      socket.write(
        `POST /v1/keys HTTP/1.1\r\nHost: ${target.host}\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n` +
          `X-Request-Id: ${requestId}\r\n\r\n{"owner":{"type":"user","id":"alice"},"name":"half`,
      );
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      clearInterval(cut);
      resolve();
    });
    // The server has the request once it logs it (request logging is on): then cut the body short.
    const cut = setInterval(() => {
      if (!linesOf(requestId).some((line) => line.msg === "incoming request")) return;
      clearInterval(cut);
      if (how === "destroy") socket.destroy();
      else socket.resetAndDestroy();
    }, 5);
  });
}

describe("an aborted upload from an unauthenticated client", () => {
  for (const how of ["destroy", "reset"] as const) {
    it(`(socket ${how}) is logged as a client abort at debug level, never as a store outage or a 503`, async () => {
      const requestId = `aborted-upload-${how}`;
      await abortMidBody(requestId, how);
      await expect.poll(() => linesOf(requestId).some((line) => line.msg === "client aborted the request")).toBe(true);
      const lines = linesOf(requestId);
      const abort = lines.find((line) => line.msg === "client aborted the request");
      expect(abort?.level).toBe(20);
      expect(lines.map((line) => line.msg)).not.toContain("store unavailable");
      // Nothing at warn (40) or above for this request.
      expect(lines.filter((line) => line.level >= 40)).toEqual([]);
      expect(lines.some((line) => line.res?.statusCode === 503)).toBe(false);
      expect(service.logs.join("")).not.toMatch(/"statusCode":503/);
    });
  }

  it("the service still answers afterwards", async () => {
    expect((await createKeyOverHttp(service)).key).toMatch(/^kw_test_/);
  });
});
