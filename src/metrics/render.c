/*
 * render.c - the Prometheus text format (version 0.0.4) of every family in
 * the registry, then the process metrics and build info (process.c).
 *
 *   # HELP nexusapi_http_requests_total HTTP requests answered, ...
 *   # TYPE nexusapi_http_requests_total counter
 *   nexusapi_http_requests_total{route="/health",method="GET",code="2xx"} 12
 *
 * Counters and histograms over small fixed label sets show every series,
 * zeros included, so rates work from the first scrape; the route families
 * show only routes that were used. A gauge never set (no worker has read
 * the queue yet) is left out rather than shown as 0. Histogram buckets are
 * stored per bucket and written cumulative; times are stored in
 * microseconds and written in seconds.
 */
#include "core/nx.h"
#include "metrics/metrics.h"
#include "metrics/metrics_int.h"
#include "core/buf.h"

#include <stdio.h>
#include <string.h>

#define LOAD(cell) atomic_load_explicit(&(cell), memory_order_relaxed)

/* A label value, escaped as the text format requires. */
static int put_label_value(nx_buf_t *b, const char *v)
{
    int rc = nx_buf_puts(b, "\"");
    for (; rc == NX_OK && *v; v++) {
        if (*v == '\\' || *v == '"')
            rc = nx_buf_printf(b, "\\%c", *v);
        else if (*v == '\n')
            rc = nx_buf_puts(b, "\\n");
        else
            rc = nx_buf_append(b, v, 1);
    }
    return rc ? rc : nx_buf_puts(b, "\"");
}

/* {a="x",b="y"[,le="..."]} for the series' label values, or "" when none. */
static int put_labels(nx_buf_t *b, const nx_metrics_family_t *f, const char *const *values,
                      const char *le)
{
    if (!f->ndims && !le)
        return NX_OK;
    int rc = nx_buf_puts(b, "{");
    for (int d = 0; rc == NX_OK && d < f->ndims; d++) {
        rc = nx_buf_printf(b, "%s%s=", d ? "," : "", nx_metrics_dim_label(f->dims[d]));
        rc = rc ? rc : put_label_value(b, values[d]);
    }
    if (rc == NX_OK && le)
        rc = nx_buf_printf(b, "%sle=\"%s\"", f->ndims ? "," : "", le);
    return rc ? rc : nx_buf_puts(b, "}");
}

/* A scaled value: an integer when the scale is 1, else a decimal. */
static int put_value(nx_buf_t *b, uint64_t v, int64_t scale)
{
    if (scale <= 1)
        return nx_buf_printf(b, " %llu\n", (unsigned long long)v);
    return nx_buf_printf(b, " %.6f\n", (double)v / (double)scale);
}

static int render_histogram(nx_buf_t *b, const nx_metrics_family_t *f,
                            const char *const *values, _Atomic uint64_t *cells)
{
    uint64_t count = 0;
    for (int i = 0; i <= f->nbounds; i++)
        count += LOAD(cells[i]);
    if (f->sparse && count == 0)
        return NX_OK;
    uint64_t cum = 0;
    int rc = NX_OK;
    for (int i = 0; rc == NX_OK && i <= f->nbounds; i++) {
        char le[32] = "+Inf";
        if (i < f->nbounds)
            snprintf(le, sizeof(le), "%g", (double)f->bounds[i] / (double)f->scale);
        cum += LOAD(cells[i]);
        rc = nx_buf_printf(b, "%s_bucket", f->name);
        rc = rc ? rc : put_labels(b, f, values, le);
        rc = rc ? rc : put_value(b, i < f->nbounds ? cum : count, 1);
    }
    rc = rc ? rc : nx_buf_printf(b, "%s_sum", f->name);
    rc = rc ? rc : put_labels(b, f, values, NULL);
    rc = rc ? rc : put_value(b, LOAD(cells[f->nbounds + 1]), f->scale);
    rc = rc ? rc : nx_buf_printf(b, "%s_count", f->name);
    rc = rc ? rc : put_labels(b, f, values, NULL);
    return rc ? rc : put_value(b, count, 1);
}

/* The label values of series s (NULL entries: the series names nothing);
 * false when some dimension has no value at that index. */
static bool series_values(const nx_metrics_family_t *f, size_t s, const char **values)
{
    for (int d = f->ndims - 1; d >= 0; d--) {
        size_t n = nx_metrics_dim_size(f->dims[d]);
        values[d] = nx_metrics_dim_value(f->dims[d], s % n);
        if (!values[d])
            return false;
        s /= n;
    }
    return true;
}

static int render_family(nx_buf_t *b, const nx_metrics_family_t *f)
{
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    if (f->known && !atomic_load_explicit(f->known, memory_order_relaxed))
        return NX_OK;
    int rc = nx_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                           kinds[f->kind]);
    size_t per = nx_metrics_series_cells(f), n = nx_metrics_series_count(f);
    for (size_t s = 0; rc == NX_OK && s < n; s++) {
        const char *values[NX_METRICS_MAX_DIMS];
        if (!series_values(f, s, values))
            continue;
        _Atomic uint64_t *cells = &f->cells[s * per];
        if (f->kind == NX_KIND_HISTOGRAM) {
            rc = render_histogram(b, f, values, cells);
            continue;
        }
        uint64_t v = LOAD(cells[0]);
        if (f->sparse && v == 0)
            continue;
        rc = nx_buf_puts(b, f->name);
        rc = rc ? rc : put_labels(b, f, values, NULL);
        rc = rc ? rc : put_value(b, v, f->scale);
    }
    return rc;
}

int nx_metrics_render(nx_buf_t *out)
{
    int rc = NX_OK;
    for (size_t i = 0; rc == NX_OK && i < nx_metrics_nfamilies; i++)
        rc = render_family(out, &nx_metrics_families[i]);
    return rc ? rc : nx_metrics_render_process(out);
}
