import * as oidc from "openid-client";
import type { OidcConfig } from "./config.js";

/** How long discovered metadata is used before it is fetched again (keys are re-fetched by openid-client when a `kid` is new). */
const METADATA_TTL_MS = 3_600_000;
/** Per request to the provider (discovery, token, userinfo), in seconds. */
const PROVIDER_TIMEOUT_S = 10;

/**
 * The provider's client configuration, discovered on first use (not at start: a provider that is
 * down must not stop the service; password sign-in and API keys keep working), shared by
 * concurrent sign-ins, and refreshed hourly. A failed discovery is not kept.
 */
export class OidcProviderClient {
  private current: { at: number; config: Promise<oidc.Configuration> } | null = null;

  constructor(private readonly settings: OidcConfig) {}

  configuration(now = Date.now()): Promise<oidc.Configuration> {
    if (this.current && now - this.current.at < METADATA_TTL_MS) return this.current.config;
    const issuer = new URL(this.settings.issuer);
    const config = oidc.discovery(issuer, this.settings.clientId, undefined, oidc.ClientSecretBasic(this.settings.clientSecret), {
      timeout: PROVIDER_TIMEOUT_S,
      // Plain HTTP only for a loopback issuer (the configuration refuses any other): tests and local development.
      ...(issuer.protocol === "http:" ? { execute: [oidc.allowInsecureRequests] } : {}),
    });
    const entry = { at: now, config };
    this.current = entry;
    config.catch(() => {
      if (this.current === entry) this.current = null;
    });
    return config;
  }
}
