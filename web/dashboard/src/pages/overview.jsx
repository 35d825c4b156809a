// Overview: the organisation, its balance, 7 days of usage, recent
// transactions and, where the server reports it, the rate-limit budget.
import { api } from '../api.js';
import { UsageChart } from '../chart.jsx';
import { ErrorMessage, Loading, Scroll, PageTitle, Time, useLoad } from '../ui.jsx';

async function load() {
  const [org, credits, usage] = await Promise.all([
    api('/api/v1/organisation'),
    api('/api/v1/credits'),
    api('/api/v1/credits/usage?days=7'),
  ]);
  return { org: org.data, credits: credits.data, usage: usage.data };
}

function RateLimit({ rl }) {
  if (!rl || typeof rl !== 'object') return null;
  const used = Math.max(0, (rl.limit || 0) - (rl.remaining || 0));
  return (
    <section class="panel" aria-labelledby="rl-h">
      <h2 id="rl-h">Rate limit</h2>
      <p>
        <strong>{used}</strong> of {rl.limit} requests used in this {Math.round((rl.window || 0) / 60)}-minute window;{' '}
        {rl.remaining} left{rl.reset != null ? `, the next frees in ${rl.reset} s` : ''}.
      </p>
      <progress max={rl.limit || 1} value={used} aria-label="Rate-limit use">
        {used} / {rl.limit}
      </progress>
    </section>
  );
}

export function Overview() {
  const { data, error, loading } = useLoad(load, []);
  return (
    <>
      <PageTitle>Overview</PageTitle>
      <ErrorMessage error={error} />
      {loading && !data && <Loading />}
      {data && (
        <>
          <div class="tiles">
            <section class="panel tile" aria-labelledby="org-h">
              <h2 id="org-h">Organisation</h2>
              <p class="big">{data.org.name}</p>
              <p class="muted">
                {data.org.domain || 'personal organisation'} · {data.org.member_count} member
                {data.org.member_count === 1 ? '' : 's'}
              </p>
            </section>
            <section class="panel tile" aria-labelledby="bal-h">
              <h2 id="bal-h">Credit balance</h2>
              <p class="big" data-testid="balance">
                {data.credits.balance}
              </p>
              <p class="muted">credits</p>
            </section>
          </div>
          <RateLimit rl={data.org.rate_limit} />
          <section class="panel" aria-labelledby="usage-h">
            <h2 id="usage-h">Last 7 days</h2>
            <UsageChart days={data.usage.days} />
          </section>
          <section class="panel" aria-labelledby="tx-h">
            <h2 id="tx-h">Recent transactions</h2>
            {data.credits.recent_transactions.length === 0 ? (
              <p class="muted">No transactions yet.</p>
            ) : (
              <Scroll label="Recent transactions">
                <table class="table">
                  <thead>
                    <tr>
                      <th scope="col">When</th>
                      <th scope="col">Type</th>
                      <th scope="col">Amount</th>
                      <th scope="col">Description</th>
                    </tr>
                  </thead>
                  <tbody>
                    {data.credits.recent_transactions.map((t) => (
                      <tr key={t.id}>
                        <td><Time iso={t.created_at} /></td>
                        <td>{t.type}</td>
                        <td class={t.type === 'DEDUCTION' ? 'neg' : 'pos'}>
                          {t.type === 'DEDUCTION' ? '−' : '+'}
                          {t.amount}
                        </td>
                        <td>{t.description || ''}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </Scroll>
            )}
          </section>
        </>
      )}
    </>
  );
}
