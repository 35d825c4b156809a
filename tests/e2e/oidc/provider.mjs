// A stock, OpenID-certified provider (panva's oidc-provider) on 127.0.0.1,
// set up to look like Google for the sign-in tests: RS256 ID tokens, the
// claims email, email_verified, name and hd, client_secret_basic as the
// client's token-endpoint authentication, and its own issuer
// http://127.0.0.1:<port>. Sign-in goes through its development login and
// consent forms, which the test fills in over HTTP: the login is the email.
//
//   node provider.mjs '{"port": 9000, "client_id": "...", "client_secret": "...",
//                       "redirect_uri": "...", "conform": true}'
//
// conform true (the library's default, OpenID Connect Core 5.4): in the code
// flow the ID token carries no profile claims, and the relying party must
// read email, email_verified, name and hd from userinfo. conform false: they
// are in the ID token too, as Google does. Prints "listening <issuer>" once
// it accepts connections; stops on SIGTERM or when stdin closes.
import { generateKeyPairSync } from 'node:crypto';

import Provider from 'oidc-provider';

const cfg = JSON.parse(process.argv[2]);
const issuer = `http://127.0.0.1:${cfg.port}`;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const key = {
  ...privateKey.export({ format: 'jwk' }), kid: 'nexus-test-rs256', alg: 'RS256', use: 'sig',
};

// Any login is an account, its sub the login (an email) itself; the email
// decides the claims: a Workspace-like domain gets hd, gmail.com none, and a
// login starting "unverified" has an unverified address.
function account(login) {
  const [local, domain] = login.split('@');
  return {
    accountId: login,
    async claims() {
      const c = {
        sub: login, email: login, email_verified: !login.startsWith('unverified'),
        name: `OP ${local}`,
      };
      if (domain && domain !== 'gmail.com') c.hd = domain;
      return c;
    },
  };
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: cfg.client_id,
    client_secret: cfg.client_secret,
    redirect_uris: [cfg.redirect_uri],
  }],
  jwks: { keys: [key] },
  cookies: { keys: ['nexus-test-provider-cookie-key'] },
  claims: {
    openid: ['sub'], email: ['email', 'email_verified', 'hd'], profile: ['name'],
  },
  conformIdTokenClaims: cfg.conform,
  async findAccount(ctx, id) {
    return account(id);
  },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
});
provider.on('server_error', (ctx, err) => { process.stderr.write(`server_error ${err.stack}\n`); });

const server = provider.listen(cfg.port, '127.0.0.1', () => {
  process.stdout.write(`listening ${issuer}\n`);
});
const stop = () => { server.close(() => process.exit(0)); server.closeAllConnections(); };
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
