// A real OpenID Connect provider for the tests: npm's `oidc-provider` (installed by .ci/run into
// $OIDC_PROVIDER_DIR) with its development login pages, one confidential client, and a few people.
// Configured by the environment; prints "ready" once listening.
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const env = process.env;
const { default: Provider } = await import(
  pathToFileURL(join(env.OIDC_PROVIDER_DIR, "node_modules/oidc-provider/lib/index.js")).href
);

// Who can sign in (the dev login page takes any password): a verified address in the allowed domain
// and group, one in another domain, one whose address the provider never verified.
const people = {
  alice: { email: "alice@example.com", email_verified: true, name: "Alice Example", groups: ["finance"] },
  dave: { email: "dave@other.example", email_verified: true, name: "Dave Other", groups: ["finance"] },
  eve: { email: "eve@example.com", email_verified: false, name: "Eve Unverified", groups: ["finance"] },
  greg: { email: "greg@example.com", email_verified: true, name: "Greg NoGroup", groups: [] },
  ada: { email: env.OIDC_EXISTING_EMAIL || "ada@example.com", email_verified: true, name: "Ada Existing", groups: ["finance"] },
};

const provider = new Provider(env.ISSUER, {
  clients: [{
    client_id: env.CLIENT_ID,
    client_secret: env.CLIENT_SECRET,
    redirect_uris: env.REDIRECT_URIS.split(","),
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  }],
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name"],
    groups: ["groups"],
  },
  scopes: ["openid", "email", "profile", "groups"],
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  ttl: { IdToken: Number(env.ID_TOKEN_TTL || 3600), AccessToken: 3600, AuthorizationCode: 60, Interaction: 600, Session: 3600, Grant: 3600 },
  cookies: { keys: ["magpie-test-provider-cookie-key"] },
  findAccount: async (ctx, id) => {
    const person = people[id];
    if (!person) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...person }) };
  },
});
provider.on("server_error", (ctx, err) => console.error("server_error", err));
provider.listen(Number(env.PORT), "127.0.0.1", () => console.log("ready"));
