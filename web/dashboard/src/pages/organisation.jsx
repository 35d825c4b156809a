// Organisation settings: name and auto-join (admins change them; members
// read them).
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.js';
import { ErrorMessage, Loading, Notice, PageTitle } from '../ui.jsx';

export function Organisation({ isAdmin, refreshMe }) {
  const [org, setOrg] = useState(null);
  const [name, setName] = useState('');
  const [autoJoin, setAutoJoin] = useState(true);
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState(null);
  const [busy, setBusy] = useState(false);

  const show = (o) => {
    setOrg(o);
    setName(o.name);
    setAutoJoin(o.auto_join);
  };
  useEffect(() => {
    api('/api/v1/organisation').then((r) => show(r.data), setError);
  }, []);

  const save = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setNotice(null);
    try {
      const { data } = await api('/api/v1/organisation', { method: 'PATCH', body: { name, auto_join: autoJoin } });
      show({ ...org, ...data });
      setNotice('Saved.');
      await refreshMe();
    } catch (err) {
      setError(err);
    }
    setBusy(false);
  };

  return (
    <>
      <PageTitle>Organisation</PageTitle>
      {!org && !error && <Loading />}
      {org && (
        <form class="panel" onSubmit={save} aria-labelledby="orgset-h">
          <h2 id="orgset-h">Settings</h2>
          {!isAdmin && <p class="muted">Only admins can change these settings.</p>}
          <div class="field">
            <label for="org-name">Name</label>
            <input id="org-name" type="text" required maxLength={255} value={name} disabled={!isAdmin}
              onInput={(e) => setName(e.currentTarget.value)} />
          </div>
          <div class="field check">
            <input id="org-autojoin" type="checkbox" checked={autoJoin} disabled={!isAdmin}
              onChange={(e) => setAutoJoin(e.currentTarget.checked)} />
            <label for="org-autojoin">
              Auto-join: new Google accounts of {org.domain ? <strong>{org.domain}</strong> : 'the domain'} join as members
            </label>
          </div>
          <p class="muted small">
            Domain: {org.domain || 'none (a personal organisation)'} · id {org.id}
          </p>
          <ErrorMessage error={error} />
          <Notice>{notice}</Notice>
          {isAdmin && (
            <button type="submit" class="primary" disabled={busy}>
              Save
            </button>
          )}
        </form>
      )}
      {!org && <ErrorMessage error={error} />}
    </>
  );
}
