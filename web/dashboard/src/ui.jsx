// Small pieces every page uses.
import { useEffect, useRef, useState } from 'preact/hooks';

export function ErrorMessage({ error }) {
  if (!error) return null;
  return (
    <p class="message error" role="alert">
      {error.message || String(error)}
    </p>
  );
}

export function Notice({ children }) {
  if (!children) return null;
  return (
    <p class="message ok" role="status">
      {children}
    </p>
  );
}

export function Loading({ what = 'Loading' }) {
  return (
    <p class="muted" role="status">
      {what}…
    </p>
  );
}

export function Time({ iso }) {
  if (!iso) return <span class="muted">–</span>;
  const d = new Date(iso);
  return <time dateTime={iso}>{d.toLocaleString()}</time>;
}

export function StatusBadge({ status }) {
  return <span class={`badge badge-${status}`}>{status}</span>;
}

// After a move to another page its heading takes the focus, so keyboard
// and screen-reader users start there; on the first page of a load the
// focus stays at the top (the skip link comes first).
let firstPage = true;

export function PageTitle({ children }) {
  const ref = useRef(null);
  useEffect(() => {
    if (firstPage) firstPage = false;
    else if (ref.current) ref.current.focus();
  }, []);
  return (
    <h1 tabIndex={-1} ref={ref}>
      {children}
    </h1>
  );
}

// Runs load() now and whenever deps change; {data, error, loading, reload}.
export function useLoad(load, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error) => live && setState({ data: null, error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, n]);
  return { ...state, reload: () => setN((x) => x + 1) };
}

// Previous / next over a cursor-paginated list: cursors is the stack of
// pages already seen.
export function Pager({ cursors, next, onPage, label }) {
  return (
    <nav class="pager" aria-label={label}>
      <button type="button" disabled={cursors.length <= 1} onClick={() => onPage(cursors.slice(0, -1))}>
        Previous page
      </button>
      <button type="button" disabled={!next} onClick={() => onPage([...cursors, next])}>
        Next page
      </button>
    </nav>
  );
}

// A table that may be wider than a phone: scrollable, and reachable by
// keyboard so it can be scrolled without a pointer.
export function Scroll({ label, children }) {
  return (
    <div class="scroll" tabIndex={0} role="region" aria-label={label}>
      {children}
    </div>
  );
}
