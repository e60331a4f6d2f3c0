// Runs graphql-http's GraphQL-over-HTTP server audits against a gateway, one
// at a time, and prints their results as one JSON array on stdout.
//   node tests/http/audits.cjs --list        the audits (id, name), no server
//   node tests/http/audits.cjs URL           run them all against URL
'use strict';
const { serverAudits } = require('graphql-http');

async function main() {
  const target = process.argv[2];
  const list = target === '--list';
  const audits = serverAudits({ url: list ? 'http://127.0.0.1:9/' : target });
  const results = [];
  for (const audit of audits) {
    if (list) {
      results.push({ id: audit.id, name: audit.name });
      continue;
    }
    const result = await audit.fn();
    results.push({
      id: result.id,
      name: result.name,
      status: result.status,
      reason: result.status === 'ok' ? null : result.reason,
      response:
        result.status === 'ok' ? null : await describe(result.response).catch(String),
    });
  }
  process.stdout.write(JSON.stringify(results));
}

async function describe(response) {
  if (!response) return null;
  const body = await response.text();
  return `${response.status} ${response.headers.get('content-type')} ${body.slice(0, 300)}`;
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
