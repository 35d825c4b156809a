// Webhooks (admins): endpoints, the signing secret shown once, a test
// event, the delivery log (polled while a delivery is pending) and retry.
// A server without webhooks answers 404: the page says so.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, listUrl } from '../api.js';
import { ErrorMessage, Loading, Notice, PageTitle, StatusBadge, Time } from '../ui.jsx';

const EVENTS = ['job.completed', 'job.failed', 'credits.low'];

function Secret({ secret, onDone }) {
  const [copied, setCopied] = useState(false);
  if (!secret) return null;
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied(true);
    } catch {
      setCopied(false);
    }
  };
  return (
    <section class="panel secret" aria-labelledby="secret-h" role="region">
      <h2 id="secret-h">Signing secret</h2>
      <p>Copy it now: it is shown only this once (rotating makes a new one).</p>
      <pre><code data-testid="webhook-secret">{secret}</code></pre>
      <button type="button" class="secondary" onClick={copy}>{copied ? 'Copied' : 'Copy secret'}</button>{' '}
      <button type="button" class="secondary" onClick={onDone}>Done</button>
    </section>
  );
}

function Deliveries({ hook, version }) {
  const [page, setPage] = useState(null);
  const [error, setError] = useState(null);
  const [n, setN] = useState(0);
  const delay = useRef(1000);
  useEffect(() => {
    let live = true;
    api(listUrl(`/api/v1/webhooks/${hook.id}/deliveries`, { limit: 10 })).then(
      ({ data }) => live && (setPage(data), setError(null)),
      (err) => live && setError(err),
    );
    return () => { live = false; };
  }, [hook.id, version, n]);
  useEffect(() => {
    if (!page || !page.items.some((d) => d.status === 'pending')) {
      delay.current = 1000;
      return undefined;
    }
    const t = setTimeout(() => setN((x) => x + 1), delay.current);
    delay.current = Math.min(5000, delay.current * 1.5);
    return () => clearTimeout(t);
  }, [page]);
  const retry = async (d) => {
    try {
      await api(`/api/v1/webhooks/${hook.id}/deliveries/${d.id}/retry`, { method: 'POST' });
      setN((x) => x + 1);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <div class="deliveries">
      <h3>Delivery log</h3>
      <ErrorMessage error={error} />
      {!page && !error && <Loading />}
      {page && page.items.length === 0 && <p class="muted">No deliveries yet.</p>}
      {page && page.items.length > 0 && (
        <ul class="log">
          {page.items.map((d) => {
            const last = d.attempts && d.attempts.length ? d.attempts[d.attempts.length - 1] : null;
            return (
              <li key={d.id} data-event-type={d.event_type} data-status={d.status}>
                <span>{d.event_type}</span> <StatusBadge status={d.status} />{' '}
                <span class="muted small">
                  <Time iso={d.created_at} />
                  {last ? ` · ${last.status_code || last.error || ''} · ${d.attempts.length} attempt${d.attempts.length === 1 ? '' : 's'}` : ''}
                </span>
                {d.status === 'failed' && (
                  <button type="button" class="secondary small" onClick={() => retry(d)}>
                    Retry
                  </button>
                )}
              </li>
            );
          })}
        </ul>
      )}
      <button type="button" class="secondary small" onClick={() => setN((x) => x + 1)}>Refresh log</button>
    </div>
  );
}

function Hook({ hook, onChanged, onSecret }) {
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState(null);
  const [version, setVersion] = useState(0);
  const [confirming, setConfirming] = useState(false);
  const act = async (fn, done) => {
    setError(null);
    setNotice(null);
    try {
      const r = await fn();
      if (done) done(r);
    } catch (err) {
      setError(err);
    }
  };
  const base = `/api/v1/webhooks/${hook.id}`;
  return (
    <li class="panel hook" data-webhook-id={hook.id}>
      <p class="hook-url"><strong>{hook.url}</strong></p>
      <p class="muted small">
        {hook.description ? `${hook.description} · ` : ''}
        {(hook.events || []).join(', ')} · {hook.enabled ? 'enabled' : `disabled${hook.disabled_reason ? ` (${hook.disabled_reason})` : ''}`}
      </p>
      <div class="buttons">
        <button type="button" class="secondary" onClick={() => act(() => api(`${base}/test`, { method: 'POST' }),
          () => { setNotice('Test event sent.'); setVersion((v) => v + 1); })}>
          Send test event
        </button>
        <button type="button" class="secondary" onClick={() => act(() => api(base, { method: 'PATCH', body: { enabled: !hook.enabled } }), onChanged)}>
          {hook.enabled ? 'Disable' : 'Enable'}
        </button>
        <button type="button" class="secondary" onClick={() => act(() => api(`${base}/rotate-secret`, { method: 'POST' }), (r) => onSecret(r.data.secret))}>
          Rotate secret
        </button>
        {confirming ? (
          <>
            <button type="button" class="danger" onClick={() => act(() => api(base, { method: 'DELETE' }), onChanged)}>Delete this webhook</button>
            <button type="button" class="secondary" onClick={() => setConfirming(false)}>Cancel</button>
          </>
        ) : (
          <button type="button" class="secondary" onClick={() => setConfirming(true)}>Delete</button>
        )}
      </div>
      <ErrorMessage error={error} />
      <Notice>{notice}</Notice>
      <Deliveries hook={hook} version={version} />
    </li>
  );
}

function CreateForm({ onCreated }) {
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState(['job.completed', 'job.failed']);
  const [description, setDescription] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const toggle = (ev) => setEvents((es) => (es.includes(ev) ? es.filter((x) => x !== ev) : [...es, ev]));
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const { data } = await api('/api/v1/webhooks', { method: 'POST', body: { url, events, description } });
      setUrl('');
      setDescription('');
      onCreated(data);
    } catch (err) {
      setError(err);
    }
    setBusy(false);
  };
  return (
    <form class="panel" onSubmit={submit} aria-labelledby="newhook-h">
      <h2 id="newhook-h">New endpoint</h2>
      <div class="field">
        <label for="hook-url">URL</label>
        <input id="hook-url" type="url" required placeholder="https://example.com/hooks/nexus" value={url}
          onInput={(e) => setUrl(e.currentTarget.value)} />
      </div>
      <fieldset class="field">
        <legend>Events</legend>
        {EVENTS.map((ev) => (
          <div class="check" key={ev}>
            <input id={`ev-${ev}`} type="checkbox" checked={events.includes(ev)} onChange={() => toggle(ev)} />
            <label for={`ev-${ev}`}>{ev}</label>
          </div>
        ))}
      </fieldset>
      <div class="field">
        <label for="hook-desc">Description</label>
        <input id="hook-desc" type="text" maxLength={500} value={description}
          onInput={(e) => setDescription(e.currentTarget.value)} />
      </div>
      <ErrorMessage error={error} />
      <button type="submit" class="primary" disabled={busy}>Create endpoint</button>
    </form>
  );
}

export function Webhooks({ isAdmin }) {
  const [state, setState] = useState({ loading: true });
  const [secret, setSecret] = useState(null);
  const load = async () => {
    try {
      const { data } = await api(listUrl('/api/v1/webhooks', { limit: 50 }));
      setState({ page: data });
    } catch (err) {
      setState({ error: err, missing: err.status === 404 });
    }
  };
  useEffect(() => {
    if (isAdmin) load();
  }, [isAdmin]);

  let body;
  if (!isAdmin) body = <p class="panel">Only admins manage webhooks.</p>;
  else if (state.loading) body = <Loading />;
  else if (state.missing)
    body = <p class="panel" data-testid="webhooks-unavailable">Webhooks are not available on this server.</p>;
  else if (state.error) body = <ErrorMessage error={state.error} />;
  else
    body = (
      <>
        <Secret secret={secret} onDone={() => setSecret(null)} />
        <CreateForm onCreated={(hook) => { setSecret(hook.secret); load(); }} />
        <section aria-labelledby="hooks-h">
          <h2 id="hooks-h">Endpoints</h2>
          {state.page.items.length === 0 ? (
            <p class="muted">No endpoints yet.</p>
          ) : (
            <ul class="hooks">
              {state.page.items.map((h) => <Hook key={h.id} hook={h} onChanged={load} onSecret={setSecret} />)}
            </ul>
          )}
        </section>
      </>
    );
  return (
    <>
      <PageTitle>Webhooks</PageTitle>
      {body}
    </>
  );
}
