import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { startTestService, type TestService } from "../helpers/service.js";

// SECURITY.md 20 (slow clients: header timeout, request timeout, per-address connection cap)
// and 6 (oversized body 413, wrong content type 415), with real sockets on loopback.

let service: TestService | undefined;
const sockets: Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await service?.close();
  service = undefined;
});

async function start(env: Record<string, string> = {}): Promise<TestService> {
  service = await startTestService({ env });
  return service;
}

/** A raw TCP client that records what the server sends and when it closes. */
interface RawClient {
  socket: Socket;
  received: () => string;
  closed: Promise<void>;
}

function open(url: string, localAddress?: string): Promise<RawClient> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), ...(localAddress ? { localAddress } : {}) });
    sockets.push(socket);
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", () => {});
    const closed = new Promise<void>((done) => socket.once("close", () => done()));
    socket.once("connect", () => resolve({ socket, received: () => Buffer.concat(chunks).toString("latin1"), closed }));
    socket.once("error", reject);
  });
}

/** Writes `text` one byte every `everyMs` until the socket closes or the text is out. */
async function dribble(client: RawClient, text: string, everyMs: number): Promise<void> {
  for (const char of text) {
    if (client.socket.destroyed || client.socket.writableEnded) return;
    client.socket.write(char);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Resolves true when `promise` settles within `ms`. */
const within = (promise: Promise<unknown>, ms: number): Promise<boolean> =>
  Promise.race([promise.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms))]);

const statusLine = (text: string) => text.split("\r\n")[0];

describe("slow clients (SECURITY.md 20)", () => {
  it("headers dribbled slower than the header timeout: 408 and the connection is closed", async () => {
    const svc = await start({ KEYWARD_HEADERS_TIMEOUT_MS: "300" });
    const client = await open(svc.url);
    client.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    // A header line that never ends: one byte every 50 ms, for far longer than the timeout.
    void dribble(client, `X-Slow: ${"a".repeat(400)}`, 50);
    expect(await within(client.closed, 10_000)).toBe(true);
    expect(statusLine(client.received())).toBe("HTTP/1.1 408 Request Timeout");
  });

  it("a body dribbled slower than the request timeout: 408 and the connection is closed", async () => {
    const svc = await start({ KEYWARD_REQUEST_TIMEOUT_MS: "600", KEYWARD_HEADERS_TIMEOUT_MS: "300" });
    const client = await open(svc.url);
    const body = JSON.stringify({ key: "x".repeat(200) });
    client.socket.write(
      `POST /v1/keys/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    void dribble(client, body, 50);
    expect(await within(client.closed, 10_000)).toBe(true);
    expect(statusLine(client.received())).toBe("HTTP/1.1 408 Request Timeout");
  });

  it("a client that sends nothing after connecting is closed by the header timeout", async () => {
    const svc = await start({ KEYWARD_HEADERS_TIMEOUT_MS: "300" });
    const client = await open(svc.url);
    client.socket.write("G");
    expect(await within(client.closed, 10_000)).toBe(true);
  });

  it("a prompt request on the same settings is served", async () => {
    const svc = await start({ KEYWARD_HEADERS_TIMEOUT_MS: "300", KEYWARD_REQUEST_TIMEOUT_MS: "600" });
    const client = await open(svc.url);
    client.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    await client.closed;
    expect(statusLine(client.received())).toBe("HTTP/1.1 200 OK");
  });

  it("the header timeout cannot be set above 20 s", async () => {
    const { loadConfig } = await import("../../src/service/config.js");
    expect(() => loadConfig({ KEYWARD_HEADERS_TIMEOUT_MS: "20001" })).toThrow(/KEYWARD_HEADERS_TIMEOUT_MS/);
    expect(loadConfig({}).hardening.headersTimeoutMs).toBe(20_000);
  });
});

describe("per-address connection cap (SECURITY.md 20)", () => {
  it("past the cap a new connection from the same address is closed at once; another address still connects", async () => {
    const svc = await start({ KEYWARD_MAX_CONNECTIONS_PER_IP: "3" });
    const held = [await open(svc.url), await open(svc.url), await open(svc.url)];
    const excess = await open(svc.url);
    expect(await within(excess.closed, 5_000)).toBe(true);
    expect(excess.received()).toBe("");
    // The held connections still work.
    held[0]?.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    await held[0]?.closed;
    expect(statusLine(held[0]?.received() ?? "")).toBe("HTTP/1.1 200 OK");
    // Another client address is not affected.
    const other = await open(svc.url, "127.0.0.2");
    other.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    await other.closed;
    expect(statusLine(other.received())).toBe("HTTP/1.1 200 OK");
  });

  it("a closed connection frees its place", async () => {
    const svc = await start({ KEYWARD_MAX_CONNECTIONS_PER_IP: "2" });
    const first = await open(svc.url);
    await open(svc.url);
    first.socket.destroy();
    await first.closed;
    // The server sees the close a moment later; retry briefly.
    let served = "";
    for (let attempt = 0; attempt < 20 && !served.startsWith("HTTP/1.1 200"); attempt++) {
      const next = await open(svc.url);
      next.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      await next.closed;
      served = next.received();
      if (!served) await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(statusLine(served)).toBe("HTTP/1.1 200 OK");
  });

  it("connections from a trusted proxy are not capped (they carry many clients)", async () => {
    const svc = await start({ KEYWARD_MAX_CONNECTIONS_PER_IP: "1", KEYWARD_TRUST_PROXY: "127.0.0.1" });
    await open(svc.url);
    const second = await open(svc.url);
    second.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    await second.closed;
    expect(statusLine(second.received())).toBe("HTTP/1.1 200 OK");
  });
});

describe("hostile bodies over a raw socket (SECURITY.md 6)", () => {
  it("a body over the limit is 413 PAYLOAD_TOO_LARGE, refused from its Content-Length before it is sent", async () => {
    const svc = await start({ KEYWARD_BODY_LIMIT: "1024" });
    const client = await open(svc.url);
    client.socket.write(
      `POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${svc.adminKey}\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\nConnection: close\r\n\r\n{"name":"`,
    );
    expect(await within(client.closed, 10_000)).toBe(true);
    const text = client.received();
    expect(statusLine(text)).toBe("HTTP/1.1 413 Payload Too Large");
    expect(text).toContain('"code":"PAYLOAD_TOO_LARGE"');
  });

  it("a chunked body that grows past the limit is 413", async () => {
    const svc = await start({ KEYWARD_BODY_LIMIT: "1024" });
    const client = await open(svc.url);
    client.socket.write(
      `POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${svc.adminKey}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`,
    );
    const chunk = "a".repeat(512);
    for (let i = 0; i < 4 && !client.socket.destroyed; i++) client.socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    expect(await within(client.closed, 10_000)).toBe(true);
    expect(statusLine(client.received())).toBe("HTTP/1.1 413 Payload Too Large");
  });

  it("a wrong content type is 415 UNSUPPORTED_MEDIA_TYPE and nothing is created", async () => {
    const svc = await start();
    const client = await open(svc.url);
    const body = "owner=user:alice&name=x";
    client.socket.write(
      `POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${svc.adminKey}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    await client.closed;
    const text = client.received();
    expect(statusLine(text)).toBe("HTTP/1.1 415 Unsupported Media Type");
    expect(text).toContain('"code":"UNSUPPORTED_MEDIA_TYPE"');
    expect(await svc.store.countKeys()).toBe(1);
  });
});
