// Signed out: Google sign-in (the /auth/google/login redirect flow) and how
// to get a one-time link without Google.
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from '../api.js';
import { ErrorMessage } from '../ui.jsx';

const LINK_MESSAGES = {
  used: 'That sign-in link was already used. Ask for a new one.',
  expired: 'That sign-in link has expired. Ask for a new one.',
  invalid: 'That sign-in link is not valid. Check that it was copied whole, or ask for a new one.',
};

export function SignIn() {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const heading = useRef(null);

  useEffect(() => {
    const why = new URLSearchParams(window.location.search).get('link');
    if (why) {
      setError(new Error(LINK_MESSAGES[why] || LINK_MESSAGES.invalid));
      window.history.replaceState(null, '', '/');
    }
    if (heading.current) heading.current.focus();
  }, []);

  // Asks the login route first, without following it: when Google sign-in
  // is not configured the answer is a problem to show, not a page of JSON.
  const google = async () => {
    setBusy(true);
    setError(null);
    try {
      const r = await fetch('/auth/google/login', { redirect: 'manual', credentials: 'same-origin' });
      if (r.type === 'opaqueredirect' || (r.status >= 300 && r.status < 400)) {
        window.location.assign('/auth/google/login');
        return;
      }
      let detail = `The server answered ${r.status}.`;
      try {
        detail = (await r.json()).detail || detail;
      } catch {
        /* not JSON: keep the status */
      }
      setError(new ApiError(r.status, detail));
    } catch {
      setError(new Error('The server could not be reached. Check the connection and try again.'));
    }
    setBusy(false);
  };

  return (
    <main id="main" class="signin">
      <div class="card">
        <h1 tabIndex={-1} ref={heading}>
          Sign in to NexusAPI
        </h1>
        <ErrorMessage error={error} />
        <button type="button" class="primary wide" onClick={google} disabled={busy}>
          Sign in with Google
        </button>
        <p class="muted">
          No Google account, or setting up a new server? An operator can print a one-time sign-in link:
        </p>
        <pre>
          <code>nexusapi login-link you@example.com</code>
        </pre>
      </div>
    </main>
  );
}
