// Members: everyone sees the list; admins change roles and remove members
// (the server refuses what would leave no admin, and says so).
import { useEffect, useState } from 'preact/hooks';
import { api, listUrl } from '../api.js';
import { ErrorMessage, Loading, Scroll, Notice, PageTitle, Pager, Time } from '../ui.jsx';

function MemberRow({ m, me, isAdmin, onChanged, onError }) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const act = async (fn) => {
    setBusy(true);
    onError(null);
    try {
      await fn();
      await onChanged();
    } catch (err) {
      onError(err);
    }
    setBusy(false);
    setConfirming(false);
  };
  const setRole = (role) =>
    act(() => api(`/api/v1/users/${m.id}`, { method: 'PATCH', body: { role } }));
  const remove = () => act(() => api(`/api/v1/users/${m.id}`, { method: 'DELETE' }));
  const label = m.name || m.email;
  return (
    <tr data-user-id={m.id}>
      <td>
        {label}
        {m.id === me.user.id && <span class="muted"> (you)</span>}
        {m.name && <div class="muted small">{m.email}</div>}
      </td>
      <td>
        {isAdmin ? (
          <select aria-label={`Role of ${label}`} value={m.role} disabled={busy}
            onChange={(e) => setRole(e.currentTarget.value)}>
            <option value="member">member</option>
            <option value="admin">admin</option>
          </select>
        ) : (
          m.role
        )}
      </td>
      <td class="wide-only"><Time iso={m.created_at} /></td>
      {isAdmin && (
        <td class="actions">
          {confirming ? (
            <>
              <button type="button" class="danger" disabled={busy} onClick={remove}>
                Remove {label}
              </button>
              <button type="button" class="secondary" onClick={() => setConfirming(false)}>
                Cancel
              </button>
            </>
          ) : (
            <button type="button" class="secondary" aria-label={`Remove ${label}`} onClick={() => setConfirming(true)}>
              Remove
            </button>
          )}
        </td>
      )}
    </tr>
  );
}

export function Members({ me, isAdmin, refreshMe }) {
  const [cursors, setCursors] = useState(['']);
  const [page, setPage] = useState(null);
  const [error, setError] = useState(null);
  const [actionError, setActionError] = useState(null);
  const [notice, setNotice] = useState(null);

  const load = async () => {
    try {
      const { data } = await api(listUrl('/api/v1/users', { limit: 20, cursor: cursors[cursors.length - 1] }));
      setPage(data);
      setError(null);
    } catch (err) {
      setError(err);
    }
  };
  useEffect(() => {
    load();
  }, [cursors]);

  const changed = async () => {
    setNotice('Saved.');
    await load();
    await refreshMe();
  };

  return (
    <>
      <PageTitle>Members</PageTitle>
      <section class="panel" aria-labelledby="members-h">
        <h2 id="members-h">People in {me.organisation.name}</h2>
        {!isAdmin && <p class="muted">Only admins can change roles or remove members.</p>}
        <ErrorMessage error={error} />
        <ErrorMessage error={actionError} />
        <Notice>{notice}</Notice>
        {!page && !error && <Loading />}
        {page && (
          <Scroll label="Members">
            <table class="table">
              <thead>
                <tr>
                  <th scope="col">Member</th>
                  <th scope="col">Role</th>
                  <th scope="col" class="wide-only">Joined</th>
                  {isAdmin && <th scope="col">Actions</th>}
                </tr>
              </thead>
              <tbody>
                {page.items.map((m) => (
                  <MemberRow key={m.id} m={m} me={me} isAdmin={isAdmin}
                    onChanged={changed} onError={(e) => { setActionError(e); if (e) setNotice(null); }} />
                ))}
              </tbody>
            </table>
          </Scroll>
        )}
        {page && <Pager cursors={cursors} next={page.next_cursor} onPage={setCursors} label="Member pages" />}
      </section>
    </>
  );
}
