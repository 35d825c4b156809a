/*
 * util.c - UUIDs, random bytes, clocks, UTF-8 checks, integer parsing.
 */
#include "core/nx.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

int nx_random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return NX_EINTERNAL;
        }
        p += r;
        n -= (size_t)r;
    }
    return NX_OK;
}

const char *nx_trim_blanks(const char *s, size_t *len)
{
    static const char blanks[] = " \t\r\n";
    s += strspn(s, blanks);
    size_t n = strlen(s);
    while (n > 0 && strchr(blanks, s[n - 1]))
        n--;
    *len = n;
    return s;
}

void nx_hex(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void nx_uuid_v4(char out[NX_UUID_LEN + 1])
{
    unsigned char b[16];
    if (nx_random_bytes(b, sizeof(b)) != NX_OK) {
        /* getrandom does not fail on Linux >= 3.17 once seeded */
        NX_ASSERT(!"getrandom failed");
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char hex[33];
    nx_hex(b, 16, hex);
    snprintf(out, NX_UUID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8,
             hex + 12, hex + 16, hex + 20);
}

bool nx_uuid_valid(const char *s)
{
    if (!s || strlen(s) != NX_UUID_LEN)
        return false;
    for (int i = 0; i < NX_UUID_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                     (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

void nx_time_now_rfc3339(char *out, size_t size, bool with_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    if (with_ms)
        snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    else
        snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec);
}

int64_t nx_time_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

size_t nx_utf8_valid_prefix(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (i + len > n)
            return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += len;
    }
    return n;
}

bool nx_utf8_valid(const char *str, size_t n) { return nx_utf8_valid_prefix(str, n) == n; }

size_t nx_utf8_len(const char *str, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)str[i] & 0xc0) != 0x80)
            count++;
    return count;
}

size_t nx_utf8_cut(const char *str, size_t n, size_t max)
{
    if (n <= max)
        return n;
    const unsigned char *s = (const unsigned char *)str;
    size_t i = max;
    /* back off over continuation bytes to the start of the cut character */
    while (i > 0 && (s[i] & 0xc0) == 0x80)
        i--;
    return i;
}

size_t nx_utf8_copy(char *out, size_t size, const char *s)
{
    if (size == 0)
        return 0;
    size_t n = nx_utf8_cut(s, strlen(s), size - 1);
    memcpy(out, s, n);
    out[n] = '\0';
    return n;
}

uint64_t nx_hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

int nx_parse_int(const char *s, long long min, long long max, long long *out)
{
    if (!s || !((*s >= '0' && *s <= '9') || (*s == '-' && s[1] >= '0' && s[1] <= '9')))
        return NX_EINVAL; /* no blanks, no '+', no empty string */
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return NX_EINVAL;
    *out = v;
    return NX_OK;
}
