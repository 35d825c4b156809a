/*
 * log.c - JSON-lines (or text) logging to stderr.
 *
 * Each line is built in a stack buffer and written with one write(2), so
 * concurrent threads never interleave within a line. Over-long values are
 * truncated rather than allocated for: logging must not fail.
 */
#include "core/nx.h"
#include "core/log.h"
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

struct line {
    char buf[4096];
    size_t len;
};

static void put(struct line *l, const char *s, size_t n)
{
    size_t room = sizeof(l->buf) - 2 - l->len; /* keep room for "}\n" */
    if (n > room)
        n = room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(struct line *l, const char *s) { put(l, s, strlen(s)); }

static void put_json_str(struct line *l, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    put(l, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[6];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            put(l, esc, 2);
        } else if (*p == '\n') {
            put(l, "\\n", 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 15];
            put(l, esc, 6);
        } else {
            put(l, (const char *)p, 1);
        }
    }
    put(l, "\"", 1);
}

static void put_value(struct line *l, const nx_log_field_t *f, bool json)
{
    char num[64];
    switch (f->type) {
    case NX_LOG_STR:
        if (!f->s)
            puts_(l, json ? "null" : "-");
        else if (json)
            put_json_str(l, f->s);
        else
            puts_(l, f->s);
        break;
    case NX_LOG_INT:
        snprintf(num, sizeof(num), "%lld", f->i);
        puts_(l, num);
        break;
    default:
        snprintf(num, sizeof(num), "%.3f", f->d);
        puts_(l, num);
        break;
    }
}

void nx_log_write(int level, const char *msg, const nx_log_field_t *fields)
{
    struct line l = {.len = 0};
    char ts[40];
    nx_time_now_rfc3339(ts, sizeof(ts), true);
    if (level < 0 || level > NX_LOG_ERROR)
        level = NX_LOG_ERROR;
    if (log_text) {
        char head[96];
        snprintf(head, sizeof(head), "%s %-5s ", ts, level_names[level]);
        puts_(&l, head);
        puts_(&l, msg);
        for (const nx_log_field_t *f = fields; f->type != NX_LOG_END; f++) {
            puts_(&l, " ");
            puts_(&l, f->key);
            puts_(&l, "=");
            put_value(&l, f, false);
        }
        l.buf[l.len++] = '\n';
    } else {
        puts_(&l, "{\"time\":\"");
        puts_(&l, ts);
        puts_(&l, "\",\"level\":\"");
        puts_(&l, level_names[level]);
        puts_(&l, "\",\"msg\":");
        put_json_str(&l, msg);
        for (const nx_log_field_t *f = fields; f->type != NX_LOG_END; f++) {
            puts_(&l, ",");
            put_json_str(&l, f->key);
            puts_(&l, ":");
            put_value(&l, f, true);
        }
        l.buf[l.len++] = '}';
        l.buf[l.len++] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, l.buf, l.len);
    NX_UNUSED(w);
}
