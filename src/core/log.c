/*
 * log.c - JSON-lines (or text) logging to stderr.
 *
 * Each line is built in a stack buffer and written with one write(2), so
 * concurrent threads never interleave within a line. Over-long values are
 * truncated rather than allocated for: logging must not fail.
 *
 * Values carry outside text (database messages, provider errors), so a line
 * is always one line of its format: JSON strings are escaped and cut only
 * between characters, keeping their closing quote, and a field that does
 * not fit is left out whole; text values have their control characters
 * escaped (\n, \x1b, \u009b), so a value can neither start a forged line
 * nor reach a terminal as an escape sequence. Ill-formed UTF-8 becomes
 * U+FFFD in JSON and \xNN in text.
 *
 * A line written while the thread works for a traced request or job attempt
 * (nx_trace_enter) carries its trace_id, unless the caller names one.
 */
#include "core/nx.h"
#include "core/log.h"
#include "core/trace.h"
#include "core/util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int nx_log_level = NX_LOG_INFO;
static bool log_text;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void nx_log_configure(int level, bool text)
{
    nx_log_level = level;
    log_text = text;
}

/* The tail every line keeps room for: "}\n" (JSON) or "\n" (text). */
#define TAIL 2

struct line {
    char buf[4096];
    size_t len;
};

/* Appends n bytes if they fit (keeping room for the tail); false if not. */
static bool put(struct line *l, const char *s, size_t n)
{
    if (l->len + n + TAIL > sizeof(l->buf))
        return false;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return true;
}

static bool puts_(struct line *l, const char *s) { return put(l, s, strlen(s)); }

/*
 * Writes the next character of s into out as the line shows it and returns
 * how many bytes of s it took. JSON escapes what JSON requires; text
 * escapes the backslash and control characters (C0, DEL, C1), so a value
 * can neither end the line nor drive a terminal. A byte that does not start
 * a well-formed UTF-8 character is U+FFFD in JSON, \xNN in text.
 */
static size_t escape_next(const unsigned char *s, bool json, char out[8], size_t *outlen)
{
    unsigned c = s[0];
    const char *e = NULL;
    if (c >= 0x80) {
        size_t w = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        if (nx_utf8_valid_prefix((const char *)s, strnlen((const char *)s, w)) != w) {
            *outlen = (size_t)snprintf(out, 8, json ? "\\ufffd" : "\\x%02x", c);
            return 1;
        }
        if (!json && c == 0xc2 && s[1] < 0xa0) { /* C1: U+0080..U+009F */
            *outlen = (size_t)snprintf(out, 8, "\\u%04x", (unsigned)s[1]);
            return 2;
        }
        memcpy(out, s, w);
        *outlen = w;
        return w;
    }
    if (c == '\n')
        e = "\\n";
    else if (c == '\r')
        e = "\\r";
    else if (c == '\t')
        e = "\\t";
    else if (c == '\\')
        e = "\\\\";
    else if (c == '"' && json)
        e = "\\\"";
    if (e) {
        *outlen = strlen(e);
        memcpy(out, e, *outlen);
    } else if (c < 0x20 || c == 0x7f) {
        *outlen = (size_t)snprintf(out, 8, json ? "\\u%04x" : "\\x%02x", c);
    } else {
        out[0] = (char)c;
        *outlen = 1;
    }
    return 1;
}

/* Appends s escaped (quoted in JSON), cut between characters if the line
 * is full; in JSON room for the closing quote is kept. False if not even
 * the empty string fits. */
static bool put_str(struct line *l, const char *s, bool json)
{
    size_t close = json ? 1 : 0;
    if (l->len + 2 * close + TAIL > sizeof(l->buf))
        return false;
    if (json)
        l->buf[l->len++] = '"';
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        char out[8];
        size_t outlen;
        size_t len = escape_next(p, json, out, &outlen);
        if (l->len + outlen + close + TAIL > sizeof(l->buf))
            break; /* full: the value is cut here, on a character */
        memcpy(l->buf + l->len, out, outlen);
        l->len += outlen;
        p += len;
    }
    if (json)
        l->buf[l->len++] = '"'; /* room was kept */
    return true;
}

static bool put_value(struct line *l, const nx_log_field_t *f, bool json)
{
    char num[64];
    switch (f->type) {
    case NX_LOG_STR:
        if (!f->s)
            return puts_(l, json ? "null" : "-");
        return put_str(l, f->s, json);
    case NX_LOG_INT:
        snprintf(num, sizeof(num), "%lld", f->i);
        return puts_(l, num);
    default:
        snprintf(num, sizeof(num), "%.3f", f->d);
        return puts_(l, num);
    }
}

/* Appends one field whole, or nothing: a line never ends mid-field. */
static void put_field(struct line *l, const nx_log_field_t *f, bool json)
{
    size_t mark = l->len;
    bool ok = json ? put(l, ",", 1) && put_str(l, f->key, true) && put(l, ":", 1)
                   : put(l, " ", 1) && puts_(l, f->key) && put(l, "=", 1);
    if (!ok || !put_value(l, f, json))
        l->len = mark;
}

void nx_log_write(int level, const char *msg, const nx_log_field_t *fields)
{
    struct line l = {.len = 0};
    char ts[40];
    nx_time_now_rfc3339(ts, sizeof(ts), true);
    if (level < 0 || level > NX_LOG_ERROR)
        level = NX_LOG_ERROR;
    bool json = !log_text;
    if (json) {
        puts_(&l, "{\"time\":\"");
        puts_(&l, ts);
        puts_(&l, "\",\"level\":\"");
        puts_(&l, level_names[level]);
        puts_(&l, "\",\"msg\":");
    } else {
        char head[96];
        snprintf(head, sizeof(head), "%s %-5s ", ts, level_names[level]);
        puts_(&l, head);
    }
    put_str(&l, msg, json);
    bool has_trace = false;
    for (const nx_log_field_t *f = fields; f->type != NX_LOG_END; f++) {
        put_field(&l, f, json);
        has_trace = has_trace || strcmp(f->key, "trace_id") == 0;
    }
    const nx_trace_t *t = nx_trace_current();
    if (t && !has_trace)
        put_field(&l, &NX_LS("trace_id", t->trace_id), json);
    if (json)
        l.buf[l.len++] = '}';
    l.buf[l.len++] = '\n';
    ssize_t w = write(STDERR_FILENO, l.buf, l.len);
    NX_UNUSED(w);
}
