// A certified OpenID provider (panva/oidc-provider) on loopback for the single sign-on tests.
// Started by tests/oidc_fixtures.py; configured from the environment:
//   OIDC_PORT            port on 127.0.0.1 (the issuer is http://127.0.0.1:PORT)
//   OIDC_REDIRECT_URIS   the platform's callback URLs, comma-separated
//   OIDC_SHORT_TTL       ID token lifetime (s) of the client "lianxi-short" (the expiry tests)
// Clients: "lianxi" (the platform), "lianxi-short" (same, short-lived ID tokens) and "other-app"
// (another relying party: its ID tokens carry another audience). Every client must use PKCE (S256).
// Sign-in and consent are oidc-provider's devInteractions forms, which the tests post with httpx.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;
const redirectUris = (process.env.OIDC_REDIRECT_URIS || '').split(',').filter(Boolean);
const shortTtl = Number(process.env.OIDC_SHORT_TTL || 2);

// Test subjects only (no real people): the subject is what the platform maps to an account.
const ACCOUNTS = new Set(['demo-fire-liaison', 'demo-not-opened', 'demo-lead']);

const client = (clientId) => ({
  client_id: clientId,
  client_secret: `${clientId}-test-secret`,
  redirect_uris: redirectUris,
  response_types: ['code'],
  grant_types: ['authorization_code'],
  token_endpoint_auth_method: 'client_secret_basic',
  id_token_signed_response_alg: 'RS256',
});

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: [client('lianxi'), client('lianxi-short'), client('other-app')],
  jwks: { keys: [signingKey] },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  ttl: {
    IdToken: (ctx, token, c) => (c.clientId === 'lianxi-short' ? shortTtl : 600),
    AccessToken: 600,
    AuthorizationCode: 60,
    Interaction: 600,
    Session: 600,
    Grant: 600,
  },
  async findAccount(ctx, sub) {
    if (!ACCOUNTS.has(sub)) return undefined;
    return { accountId: sub, async claims() { return { sub }; } };
  },
  cookies: { keys: ['lianxi-test-cookie-key'] },
});

provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
