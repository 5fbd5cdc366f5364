import type { Keyward } from "../../src/engine/keyward.js";
import { buildApp } from "../../src/service/app.js";
import { loadConfig } from "../../src/service/config.js";
import { createLogger } from "../../src/service/logger.js";
import { ServiceMetrics } from "../../src/service/metrics.js";
import { createAdminKey, openKeyward } from "../../src/service/open-keyward.js";

export interface InProcessService {
  keyward: Keyward;
  url: string;
  adminKey: string;
  close(): Promise<void>;
}

/**
 * The serving engine and HTTP app exactly as `keyward serve` assembles them from `env`, in this
 * process on a loopback port, with an admin key: for tests that stop the database or Redis
 * under it (a spawned server would hide the engine they inspect).
 */
export async function startInProcessService(env: Record<string, string>): Promise<InProcessService> {
  const config = { ...loadConfig(env), port: 0 };
  const metrics = new ServiceMetrics();
  const logger = createLogger("silent");
  const keyward = await openKeyward(config, { metrics, logger });
  const app = await buildApp({ keyward, config, logger, metrics });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const adminKey = (await createAdminKey(keyward, "test admin", { type: "cli", id: "test" })).key;
  return {
    keyward,
    url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}`,
    adminKey,
    close: async () => {
      await app.close();
      await keyward.close().catch(() => {});
    },
  };
}
