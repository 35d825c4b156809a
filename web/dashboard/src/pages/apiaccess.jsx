// API: where the reference is and how a program gets a token. Everything
// this dashboard does goes through the same public API.
import { PageTitle } from '../ui.jsx';

export function ApiAccess({ me }) {
  const origin = window.location.origin;
  return (
    <>
      <PageTitle>API</PageTitle>
      <section class="panel" aria-labelledby="ref-h">
        <h2 id="ref-h">Reference</h2>
        <p>
          Every page here uses the public API, nothing else. The interactive reference is at{' '}
          <a href="/docs">/docs</a>, the OpenAPI document at <a href="/openapi.json">/openapi.json</a>.
        </p>
      </section>
      <section class="panel" aria-labelledby="token-h">
        <h2 id="token-h">Getting an access token</h2>
        <p>Programs send a JWT access token as <code>Authorization: Bearer …</code>. Two ways to get one:</p>
        <ul>
          <li>
            An app that signs its user in with Google posts the Google ID token to{' '}
            <code>POST /auth/google/token</code> and receives an access token.
          </li>
          <li>
            An operator of this server mints one for a user: <code>nexusapi token {me.user.email}</code>{' '}
            (<code>--minutes N</code> for its lifetime).
          </li>
        </ul>
        <pre>
          <code>{`TOKEN=$(nexusapi token ${me.user.email})
curl -H "Authorization: Bearer $TOKEN" ${origin}/api/v1/me`}</code>
        </pre>
      </section>
    </>
  );
}
