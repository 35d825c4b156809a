// The dashboard's shell: who is signed in (GET /api/v1/me), the navigation
// (hash routes, so GET / is the only page the server serves) and sign-out.
import { useEffect, useState } from 'preact/hooks';
import { api, onUnauthorized } from './api.js';
import { ErrorMessage, Loading } from './ui.jsx';
import { SignIn } from './pages/signin.jsx';
import { Overview } from './pages/overview.jsx';
import { Jobs } from './pages/jobs.jsx';
import { Members } from './pages/members.jsx';
import { Organisation } from './pages/organisation.jsx';
import { Webhooks } from './pages/webhooks.jsx';
import { ApiAccess } from './pages/apiaccess.jsx';

const PAGES = [
  { id: 'overview', title: 'Overview', Page: Overview },
  { id: 'jobs', title: 'Jobs', Page: Jobs },
  { id: 'members', title: 'Members', Page: Members },
  { id: 'organisation', title: 'Organisation', Page: Organisation },
  { id: 'webhooks', title: 'Webhooks', Page: Webhooks },
  { id: 'api', title: 'API', Page: ApiAccess },
];

function currentPage() {
  const id = window.location.hash.replace(/^#\/?/, '').split('?')[0];
  return PAGES.find((p) => p.id === id) || PAGES[0];
}

export function App() {
  const [session, setSession] = useState({ state: 'loading' });
  const [page, setPage] = useState(currentPage);

  const loadMe = () =>
    api('/api/v1/me', { quiet401: true }).then(
      ({ data }) => setSession({ state: 'in', me: data }),
      (error) => setSession(error.status === 401 ? { state: 'out' } : { state: 'error', error }),
    );

  useEffect(() => {
    onUnauthorized(() => setSession({ state: 'out' }));
    loadMe();
    const onHash = () => setPage(currentPage());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  useEffect(() => {
    document.title = session.state === 'in' ? `${page.title} · NexusAPI` : 'Sign in · NexusAPI';
  }, [page, session.state]);

  if (session.state === 'loading') return <main id="main" class="center"><Loading /></main>;
  if (session.state === 'out') return <SignIn />;
  if (session.state === 'error')
    return (
      <main id="main" class="center">
        <h1>NexusAPI</h1>
        <ErrorMessage error={session.error} />
        <button type="button" onClick={loadMe}>Try again</button>
      </main>
    );

  const { user, organisation } = session.me;
  const signOut = async () => {
    try {
      await api('/auth/logout', { method: 'POST', quiet401: true });
    } finally {
      setSession({ state: 'out' });
    }
  };
  const { Page } = page;
  return (
    <div class="shell">
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById('main').focus(); }}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">NexusAPI</span>
        <span class="who">
          <span class="org">{organisation.name}</span>
          <span class="muted">
            {user.email} · {user.role}
          </span>
        </span>
        <button type="button" class="secondary" onClick={signOut}>
          Sign out
        </button>
      </header>
      <nav class="side" aria-label="Main">
        <ul>
          {PAGES.map((p) => (
            <li key={p.id}>
              <a href={`#/${p.id}`} aria-current={p.id === page.id ? 'page' : undefined}>
                {p.title}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" tabIndex={-1}>
        <Page key={page.id} me={session.me} isAdmin={user.role === 'admin'} refreshMe={loadMe} />
      </main>
    </div>
  );
}
