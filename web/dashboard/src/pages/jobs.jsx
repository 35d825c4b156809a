// Jobs: submit a summarise or analyse, watch each job move pending ->
// running -> completed/failed (polled, backing off from 1 s to 5 s while any
// job on the page is live), read its output or error, filter by status and
// page through the history.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, listUrl } from '../api.js';
import { ErrorMessage, Loading, Notice, PageTitle, Pager, StatusBadge, Time } from '../ui.jsx';

const PAGE = 10;
const LIVE = new Set(['pending', 'running']);
const STATUSES = ['pending', 'running', 'completed', 'failed'];

function Output({ job }) {
  if (job.status === 'failed') return <p class="message error">{job.error_message || 'The job failed.'}</p>;
  if (job.status !== 'completed') return <p class="muted">No output yet.</p>;
  const o = job.output || {};
  if (job.job_type === 'summarise')
    return (
      <>
        <p class="summary">{o.summary}</p>
        <p class="muted">
          {o.provider} · {o.model}
          {o.cached ? ' · from cache' : ''}
        </p>
      </>
    );
  return (
    <dl class="facts">
      <dt>Words</dt><dd>{o.word_count}</dd>
      <dt>Sentences</dt><dd>{o.sentence_count}</dd>
      <dt>Reading time</dt><dd>{o.reading_time_seconds} s</dd>
      <dt>Flesch reading ease</dt><dd>{o.flesch_reading_ease}</dd>
      <dt>Sentiment</dt><dd>{o.sentiment ? `${o.sentiment.label} (${o.sentiment.score})` : '–'}</dd>
      <dt>Top keywords</dt>
      <dd>{(o.top_keywords || []).map((k) => `${k.term} (${k.count})`).join(', ') || '–'}</dd>
    </dl>
  );
}

function JobItem({ job }) {
  return (
    <li class="job" data-job-id={job.id} data-status={job.status}>
      <details>
        <summary>
          <span class="job-type">{job.job_type}</span>
          <StatusBadge status={job.status} />
          <span class="muted job-meta">
            <Time iso={job.created_at} /> · {job.credits_charged} credits
          </span>
        </summary>
        <div class="job-body">
          <Output job={job} />
          <p class="muted small">
            Job {job.id} · attempt {job.attempt_count} of {job.max_attempts}
          </p>
        </div>
      </details>
    </li>
  );
}

function SubmitForm({ onSubmitted }) {
  const [type, setType] = useState('summarise');
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setNotice(null);
    try {
      const { data } = await api(`/api/v1/${type}`, { method: 'POST', body: { text } });
      setNotice(`Submitted: ${data.credits_charged} credits charged.`);
      setText('');
      onSubmitted(data.job_id);
    } catch (err) {
      setError(err);
    }
    setBusy(false);
  };
  return (
    <form class="panel" onSubmit={submit} aria-labelledby="submit-h">
      <h2 id="submit-h">New job</h2>
      <div class="field">
        <label for="job-type">Type</label>
        <select id="job-type" value={type} onChange={(e) => setType(e.currentTarget.value)}>
          <option value="summarise">Summarise (10 credits)</option>
          <option value="analyse">Analyse (25 credits)</option>
        </select>
      </div>
      <div class="field">
        <label for="job-text">Text</label>
        <textarea id="job-text" rows={5} required maxLength={100000} value={text}
          onInput={(e) => setText(e.currentTarget.value)} />
      </div>
      <ErrorMessage error={error} />
      <Notice>{notice}</Notice>
      <button type="submit" class="primary" disabled={busy}>
        Submit
      </button>
    </form>
  );
}

export function Jobs() {
  const [status, setStatus] = useState('');
  const [cursors, setCursors] = useState(['']);
  const [page, setPage] = useState(null);
  const [error, setError] = useState(null);
  const [pollError, setPollError] = useState(null);
  const delay = useRef(1000);

  const load = async () => {
    try {
      const cursor = cursors[cursors.length - 1];
      const { data } = await api(listUrl('/api/v1/jobs', { limit: PAGE, status, cursor }));
      setPage(data);
      setError(null);
    } catch (err) {
      setError(err);
    }
  };

  useEffect(() => {
    load();
  }, [status, cursors]);

  // While a job on the page is live, re-read those jobs, backing off.
  useEffect(() => {
    if (!page || !page.items.some((j) => LIVE.has(j.status))) {
      delay.current = 1000;
      return undefined;
    }
    const t = setTimeout(async () => {
      try {
        const fresh = await Promise.all(
          page.items.map((j) => (LIVE.has(j.status) ? api(`/api/v1/jobs/${j.id}`).then((r) => r.data) : j)),
        );
        delay.current = Math.min(5000, delay.current * 1.5);
        setPollError(null);
        setPage((p) => ({ ...p, items: fresh }));
      } catch (err) {
        delay.current = 5000;
        setPollError(err);
        setPage((p) => ({ ...p }));
      }
    }, delay.current);
    return () => clearTimeout(t);
  }, [page]);

  const submitted = () => {
    delay.current = 1000;
    if (cursors.length === 1 && (status === '' || status === 'pending')) load();
    else {
      setStatus('');
      setCursors(['']);
    }
  };

  return (
    <>
      <PageTitle>Jobs</PageTitle>
      <SubmitForm onSubmitted={submitted} />
      <section class="panel" aria-labelledby="history-h">
        <div class="row">
          <h2 id="history-h">History</h2>
          <div class="field inline">
            <label for="job-filter">Status</label>
            <select id="job-filter" value={status}
              onChange={(e) => { setStatus(e.currentTarget.value); setCursors(['']); }}>
              <option value="">All</option>
              {STATUSES.map((s) => <option key={s} value={s}>{s}</option>)}
            </select>
          </div>
        </div>
        <ErrorMessage error={error} />
        <ErrorMessage error={pollError} />
        {!page && !error && <Loading />}
        {page && page.items.length === 0 && <p class="muted">No jobs{status ? ` with status ${status}` : ''}.</p>}
        {page && page.items.length > 0 && (
          <ul class="jobs" aria-live="polite">
            {page.items.map((j) => <JobItem key={j.id} job={j} />)}
          </ul>
        )}
        {page && <Pager cursors={cursors} next={page.next_cursor} onPage={setCursors} label="Job pages" />}
      </section>
    </>
  );
}
