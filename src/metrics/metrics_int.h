/*
 * metrics_int.h - private to src/metrics/: the family table (registry.c)
 * as the renderer (render.c) reads it.
 */
#ifndef NX_METRICS_METRICS_INT_H
#define NX_METRICS_METRICS_INT_H

#include "core/nx.h"
#include "metrics/metrics.h"

#include <stdatomic.h>

/* The label dimensions: each a fixed, bounded list of values. */
enum nx_metrics_dim {
    NX_DIM_ROUTE = 0, /* the router's templates, then "unmatched" */
    NX_DIM_METHOD,    /* GET HEAD POST PUT PATCH DELETE OPTIONS other */
    NX_DIM_CODE,      /* 1xx 2xx 3xx 4xx 5xx */
    NX_DIM_JOB_TYPE,  /* the job registry's names */
    NX_DIM_WEBHOOK,   /* enum nx_metrics_webhook_outcome */
    NX_DIM_DB,        /* enum nx_metrics_db_outcome */
    NX_DIMS
};

enum nx_metrics_kind { NX_KIND_COUNTER = 0, NX_KIND_GAUGE, NX_KIND_HISTOGRAM };

#define NX_METRICS_MAX_DIMS 3

typedef struct nx_metrics_family {
    const char *name;
    int kind;                       /* enum nx_metrics_kind */
    const char *help;
    int dims[NX_METRICS_MAX_DIMS];  /* enum nx_metrics_dim */
    int ndims;
    bool sparse;                    /* show only series that counted something */
    const int64_t *bounds;          /* histograms: bucket upper bounds (scaled) */
    int nbounds;
    int64_t scale;                  /* cells hold value * scale (microseconds: 1e6) */
    _Atomic uint64_t *cells;        /* per series: 1, or nbounds + 2 (buckets, +Inf, sum) */
    atomic_bool *known;             /* gauges: a value was stored */
} nx_metrics_family_t;

extern const nx_metrics_family_t nx_metrics_families[];
extern const size_t nx_metrics_nfamilies;

/* A dimension's label name, size, and the value at index i (NULL when that
 * index names nothing, e.g. past the router's routes). */
const char *nx_metrics_dim_label(int dim);
size_t nx_metrics_dim_size(int dim);
const char *nx_metrics_dim_value(int dim, size_t i);
/* Cells per series of f. */
size_t nx_metrics_series_cells(const nx_metrics_family_t *f);
/* Number of series of f (the product of its dimensions' sizes). */
size_t nx_metrics_series_count(const nx_metrics_family_t *f);

/* process_* families and nexusapi_build_info (process.c). */
int nx_metrics_render_process(nx_buf_t *out);

#endif
