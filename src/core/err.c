/*
 * err.c - the error sink and the tables generated from NX_ERR_MAP.
 *
 * The sink's text fields are fixed-size and often hold what a client sent
 * (a JSON key as a field name, a domain in a detail). Text is cut on a
 * character boundary, never inside a UTF-8 sequence, so a cut name is still
 * text a client can read and a problem body stays valid UTF-8.
 */
#include "core/nx.h"
#include "core/err.h"
#include "core/util.h"

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

/* Formats into out[size], cut on a character boundary. The scratch buffer
 * is longer than any field of the sink, so the byte after the cut is still
 * there to say whether the cut splits a character. */
static void format_text(char *out, size_t size, const char *fmt, va_list ap)
{
    char tmp[sizeof(((nx_err_t *)0)->log_detail) + 8];
    NX_ASSERT(size < sizeof(tmp) - 4);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    nx_utf8_copy(out, size, tmp);
}

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
        format_text(err->detail, sizeof(err->detail), fmt, ap);
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
    format_text(err->log_detail, sizeof(err->log_detail), fmt, ap);
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
    nx_utf8_copy(f->field, sizeof(f->field), field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    format_text(f->message, sizeof(f->message), fmt, ap);
    va_end(ap);
}
