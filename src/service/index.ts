export { type AppOptions, buildApp } from "./app.js";
export { loadConfig, type ServiceConfig } from "./config.js";
export { createLogger } from "./logger.js";
export { ServiceMetrics } from "./metrics.js";
export { bootstrapAdminKey, openKeyward, type RunningService, startService } from "./runtime.js";
