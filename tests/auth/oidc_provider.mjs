// A real OpenID Connect provider (npm oidc-provider) on loopback for the
// token-validation tests. It issues RFC 9068 JWT access tokens through the
// client-credentials grant. Configuration comes as one JSON argument:
//   { port, issuer, audience, keys: [private JWKs, the first signs], clients: [...] }
// Prints "ready" when it listens; the test kills it when done.
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2]);

const provider = new Provider(config.issuer, {
  clients: config.clients.map((client) => ({
    ...client,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
  })),
  jwks: { keys: config.keys },
  scopes: ['catalog:read', 'applications:read'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => config.audience,
      useGrantedResource: () => true,
      // Any resource asked for becomes the token's audience, so a test can
      // obtain a genuine token for another audience.
      getResourceServerInfo: (_ctx, resource) => ({
        scope: 'catalog:read applications:read',
        audience: resource,
        accessTokenFormat: 'jwt',
        accessTokenTTL: 300,
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
});

const server = provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write('ready\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
