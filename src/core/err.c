/*
 * err.c - the error sink and the tables generated from NX_ERR_MAP.
 */
#include "core/nx.h"
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct err_info {
    int status;
    const char *slug;
    const char *title;
    const char *name;
};

static const struct err_info table[] = {
    {200, "ok", "OK", "NX_OK"},
#define XX(name, status, slug, title) {status, slug, title, "NX_E" #name},
    NX_ERR_MAP(XX)
#undef XX
};

static const struct err_info *info(int code)
{
    size_t i = (size_t)(code < 0 ? -code : code);
    if (i >= NX_ARRAY_LEN(table))
        i = (size_t)-NX_EINTERNAL;
    return &table[i];
}

int nx_err_status(int code) { return info(code)->status; }
const char *nx_err_slug(int code) { return info(code)->slug; }
const char *nx_err_title(int code) { return info(code)->title; }
const char *nx_err_name(int code) { return info(code)->name; }

void nx_err_clear(nx_err_t *err) { memset(err, 0, sizeof(*err)); }

int nx_err_set(nx_err_t *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    if (err->code != 0)
        return err->code;
    err->code = code;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
        va_end(ap);
    }
    return code;
}

void nx_err_log(nx_err_t *err, const char *fmt, ...)
{
    if (!err || err->log_detail[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->log_detail, sizeof(err->log_detail), fmt, ap);
    va_end(ap);
}

void nx_err_field(nx_err_t *err, const char *field, const char *fmt, ...)
{
    if (!err)
        return;
    if (err->code == 0)
        err->code = NX_EVALIDATION;
    if (err->code != NX_EVALIDATION || err->nfields >= NX_ERR_MAX_FIELDS)
        return;
    nx_field_err_t *f = &err->fields[err->nfields++];
    snprintf(f->field, sizeof(f->field), "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof(f->message), fmt, ap);
    va_end(ap);
}
