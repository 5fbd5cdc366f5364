export { buildApp, type AppOptions } from "./app.js";
export { loadConfig, type ServiceConfig } from "./config.js";
export { startService, openKeyward, bootstrapAdminKey, type RunningService } from "./runtime.js";
export { createLogger } from "./logger.js";
export { ServiceMetrics } from "./metrics.js";
