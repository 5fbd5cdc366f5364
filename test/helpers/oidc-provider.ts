// An OpenID provider for the single sign-on tests (docs/sso.md): panva's oidc-provider, in process on loopback.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import Provider from "oidc-provider";

export const CLIENT_ID = "keyward-dashboard";
export const CLIENT_SECRET = "test client secret that is long enough";
export const CALLBACK = "/v1/session/oidc/callback";

/** The people the test provider knows, by subject; edited by tests between sign-ins. */
export type Person = { email: string; email_verified?: boolean; groups?: string[] };
export const people = new Map<string, Person>();
/** Who signs in at the provider's login step. */
export const idp = { signingIn: "alice" };

export interface TestProvider {
  url: string;
  server: Server;
  /** Registers the client with this redirect URI (the service's port is known only once it listens). */
  start(redirectUri: string): void;
  close(): Promise<void>;
}

/** An oidc-provider on a loopback port whose login and consent steps finish at once for `signingIn`. */
export async function startProvider(issuerOverride?: (url: string) => string): Promise<TestProvider> {
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | null = null;
  const server = createServer((req, res) => {
    if (!handler) {
      res.statusCode = 503;
      res.end();
      return;
    }
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    server,
    start(redirectUri) {
      const provider = new Provider(issuerOverride ? issuerOverride(url) : url, {
        clients: [
          {
            client_id: CLIENT_ID,
            client_secret: CLIENT_SECRET,
            redirect_uris: [redirectUri],
            grant_types: ["authorization_code"],
            response_types: ["code"],
            token_endpoint_auth_method: "client_secret_basic",
          },
        ],
        claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name", "groups"] },
        findAccount: async (_ctx: unknown, sub: string) => ({
          accountId: sub,
          claims: async () => ({ sub, ...(people.get(sub) ?? {}) }),
        }),
        features: { devInteractions: { enabled: false } },
        interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
        cookies: { keys: ["test cookie key for the provider"] },
        ttl: { Grant: 600, AccessToken: 600, IdToken: 600, Interaction: 600, Session: 600, AuthorizationCode: 60 },
      });
      // Quiet: the provider reports refused requests (a wrong client, a reused code) as events.
      provider.on("server_error", () => {});
      const callback = provider.callback();
      handler = (req, res) => {
        if (!req.url?.startsWith("/interaction/")) return callback(req, res);
        void (async () => {
          const details = await provider.interactionDetails(req, res);
          if (details.prompt.name === "login")
            return provider.interactionFinished(req, res, { login: { accountId: idp.signingIn } }, { mergeWithLastSubmission: false });
          const grant = details.grantId
            ? ((await provider.Grant.find(details.grantId)) as NonNullable<Awaited<ReturnType<typeof provider.Grant.find>>>)
            : new provider.Grant({ accountId: details.session?.accountId ?? idp.signingIn, clientId: details.params.client_id });
          if (details.prompt.details.missingOIDCScope) grant.addOIDCScope(details.prompt.details.missingOIDCScope.join(" "));
          if (details.prompt.details.missingOIDCClaims) grant.addOIDCClaims(details.prompt.details.missingOIDCClaims);
          const grantId = await grant.save();
          return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
        })().catch((error: Error) => {
          res.statusCode = 500;
          res.end(error.message);
        });
      };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
