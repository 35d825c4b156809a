// The 7-day usage chart: uPlot bars of credits spent and refunded per day,
// in the theme's colours (redrawn when the system theme changes), with the
// same numbers in a table for screen readers and keyboard users.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function options(width, labels) {
  const text = cssVar('--text-muted');
  const grid = cssVar('--border');
  const bars = uPlot.paths.bars({ size: [0.35, 40], align: 0 });
  const barsShift = uPlot.paths.bars({ size: [0.35, 40], align: 1 });
  const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  return {
    width,
    height: 220,
    legend: { show: true },
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    scales: { x: { time: false, range: [-0.5, labels.length - 0.5] }, y: { range: (u, min, max) => [0, Math.max(10, max * 1.15)] } },
    axes: [
      { ...axis, splits: () => labels.map((_, i) => i), values: (u, splits) => splits.map((i) => labels[i] || '') },
      { ...axis, size: 48 },
    ],
    series: [
      { label: 'Day', value: (u, i) => (i == null ? '' : labels[i] || '') },
      { label: 'Spent', fill: cssVar('--chart-spent'), stroke: cssVar('--chart-spent'), paths: bars, points: { show: false } },
      { label: 'Refunded', fill: cssVar('--chart-refunded'), stroke: cssVar('--chart-refunded'), paths: barsShift, points: { show: false } },
    ],
  };
}

// "Mon 7" where there is room, "Mon" on a phone.
function dayLabel(iso, narrow) {
  const d = new Date(`${iso}T00:00:00Z`);
  const f = narrow ? { weekday: 'short', timeZone: 'UTC' } : { weekday: 'short', day: 'numeric', timeZone: 'UTC' };
  return d.toLocaleDateString(undefined, f);
}

export function UsageChart({ days }) {
  const box = useRef(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const data = [days.map((_, i) => i), days.map((d) => d.spent), days.map((d) => d.refunded)];
    let plot = null;
    const draw = () => {
      if (plot) plot.destroy();
      el.textContent = '';
      const width = Math.max(260, el.clientWidth);
      const labels = days.map((d) => dayLabel(d.date, width < 480));
      plot = new uPlot(options(width, labels), data, el);
    };
    draw();
    const dark = window.matchMedia('(prefers-color-scheme: dark)');
    const resize = new ResizeObserver(() => {
      if (plot && Math.abs(plot.width - el.clientWidth) > 4) plot.setSize({ width: Math.max(260, el.clientWidth), height: 220 });
    });
    resize.observe(el);
    dark.addEventListener('change', draw);
    return () => {
      dark.removeEventListener('change', draw);
      resize.disconnect();
      if (plot) plot.destroy();
      plot = null;
    };
  }, [days]);

  return (
    <figure class="chart">
      <div ref={box} class="chart-box" aria-hidden="true" data-testid="usage-chart" />
      <figcaption>
        <details>
          <summary>Credits spent and refunded per day, as a table</summary>
          <table class="table">
            <thead>
              <tr>
                <th scope="col">Day (UTC)</th>
                <th scope="col">Spent</th>
                <th scope="col">Refunded</th>
              </tr>
            </thead>
            <tbody>
              {days.map((d) => (
                <tr key={d.date} data-date={d.date}>
                  <td>{d.date}</td>
                  <td>{d.spent}</td>
                  <td>{d.refunded}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      </figcaption>
    </figure>
  );
}
