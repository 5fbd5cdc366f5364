import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { errorText } from "../../src/service/error-text.js";
import { captureLogs } from "../helpers/logs.js";
import { freePort } from "../helpers/private-redis.js";

/**
 * A real connection error with an empty message: a host name with two addresses (as
 * `localhost` has on a machine with IPv6, or a service name in a container network), nothing
 * listening on either, so Node tries both and fails with an AggregateError. Two IPv4 loopback
 * addresses, so the test does not depend on the machine having IPv6.
 */
async function refusedOnTwoAddresses(): Promise<Error> {
  const port = await freePort();
  return new Promise((resolve) => {
    const socket = connect({
      host: "two-addresses.test",
      port,
      autoSelectFamily: true,
      lookup: (_host, options, callback) => {
        const all = [
          { address: "127.0.0.1", family: 4 },
          { address: "127.0.0.2", family: 4 },
        ];
        if ((options as { all?: boolean }).all) (callback as (e: null, a: typeof all) => void)(null, all);
        else (callback as (e: null, a: string, f: number) => void)(null, "127.0.0.1", 4);
      },
    });
    socket.on("error", (error) => resolve(error));
  });
}

const capture = () => captureLogs("info");

describe("warnings name the error", () => {
  it("an error with an empty message is named by its code", async () => {
    const error = await refusedOnTwoAddresses();
    expect(error.message).toBe("");
    expect(errorText(error)).toBe("ECONNREFUSED");
    expect(errorText(new Error("Command timed out"))).toBe("Command timed out");
    expect(errorText(undefined)).toBe("unknown error");
  });

  it("the service logger writes a message for an `err` given as text or with an empty message", async () => {
    const { lines, logger } = capture();
    logger.warn({ err: "Command timed out" }, "as text");
    logger.warn({ err: await refusedOnTwoAddresses() }, "as an error");
    const [asText, asError] = lines.map((line) => JSON.parse(line) as { err: { message: string; code?: string } });
    expect(asText?.err.message).toBe("Command timed out");
    expect(asError?.err).toMatchObject({ message: "ECONNREFUSED", code: "ECONNREFUSED" });
  });
});
