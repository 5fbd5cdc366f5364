import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { attemptAddress } from "../core/failed-attempts.js";
import type { ServiceConfig } from "./config.js";
import { trustedProxyMatcher, trustProxyWarnings } from "./trust-proxy.js";

/**
 * Node checks header and request timeouts on a timer (30 s by default), so a 20 s header
 * timeout could let a slow client hold a socket for 50 s. Checking more often keeps the bound.
 */
export function connectionsCheckingInterval(config: ServiceConfig): number {
  const shortest = Math.min(config.hardening.headersTimeoutMs, config.hardening.requestTimeoutMs);
  return Math.min(1_000, Math.max(25, Math.floor(shortest / 4)));
}

/**
 * Guards against hostile and misconfigured clients that act below the routes (docs/security.md, checks 8,
 * 20): a cap on open connections per client address, start-up warnings for trust settings that
 * let clients choose their address, and a one-time warning when requests carry
 * `X-Forwarded-For` that nothing is configured to believe.
 */
export function installClientGuards(app: FastifyInstance, config: ServiceConfig, logger: Logger): void {
  for (const warning of trustProxyWarnings(config.trustProxy)) logger.warn({ setting: "KEYWARD_TRUST_PROXY" }, warning);
  capConnectionsPerAddress(app, config, logger);
  if (config.trustProxy.length === 0) warnOnUnexpectedForwardedFor(app, logger);
}

/**
 * Past `KEYWARD_MAX_CONNECTIONS_PER_IP` open connections from one address, a new one is closed
 * at once. Counted by socket peer (IPv6 by /64), so `X-Forwarded-For` cannot dodge it; trusted
 * proxies are exempt, since their connections carry many clients. The table holds only
 * addresses with open connections, so it is bounded by the sockets themselves.
 */
function capConnectionsPerAddress(app: FastifyInstance, config: ServiceConfig, logger: Logger): void {
  const cap = config.hardening.maxConnectionsPerIp;
  if (cap === 0) return;
  const isTrustedProxy = trustedProxyMatcher(config.trustProxy);
  const open = new Map<string, number>();
  app.server.on("connection", (socket: Socket) => {
    const peer = socket.remoteAddress;
    if (!peer || isTrustedProxy(peer)) return;
    const address = attemptAddress(peer);
    const count = (open.get(address) ?? 0) + 1;
    if (count > cap) {
      logger.debug({ address, cap }, "connection refused: too many open connections from this address");
      socket.destroy();
      return;
    }
    open.set(address, count);
    socket.once("close", () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left <= 0) open.delete(address);
      else open.set(address, left);
    });
  });
}

function warnOnUnexpectedForwardedFor(app: FastifyInstance, logger: Logger): void {
  const check = (request: IncomingMessage) => {
    if (request.headers["x-forwarded-for"] === undefined) return;
    app.server.off("request", check);
    logger.warn(
      { setting: "KEYWARD_TRUST_PROXY" },
      "requests carry X-Forwarded-For but KEYWARD_TRUST_PROXY is empty, so it is ignored and every client behind the proxy has the proxy's address (one throttle, one connection cap, one audit address for all). If a proxy you run is in front, list its address in KEYWARD_TRUST_PROXY.",
    );
  };
  app.server.on("request", check);
}
