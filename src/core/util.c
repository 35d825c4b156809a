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
#include <xxhash.h>

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

void nx_hex(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int nx_unhex(const char *hex, unsigned char *out, size_t n)
{
    if (strlen(hex) != 2 * n)
        return NX_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return NX_EINVAL;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return NX_OK;
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

/* n decimal digits at s into *out; false if any is not a digit. */
static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

int nx_parse_rfc3339(const char *s, long long *out)
{
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0, sign = 0;
    if (!s || strlen(s) < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d))
        return NX_EINVAL;
    const char *p = s + 10;
    if (*p == 'T' || *p == 't') {
        if (strlen(p) < 9 || !digits(p + 1, 2, &h) || p[3] != ':' || !digits(p + 4, 2, &mi) ||
            p[6] != ':' || !digits(p + 7, 2, &sec))
            return NX_EINVAL;
        p += 9;
        if (*p == '.') /* fractions of a second: kept to the second */
            for (p++; *p >= '0' && *p <= '9'; p++)
                ;
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && digits(p + 1, 2, &oh) &&
                   p[3] == ':' && digits(p + 4, 2, &om)) {
            sign = *p == '+' ? 1 : -1;
            p += 6;
        } else {
            return NX_EINVAL;
        }
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 ||
        oh > 23 || om > 59)
        return NX_EINVAL;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (tm.tm_mday != d) /* 2027-02-30 normalised into March: not a date */
        return NX_EINVAL;
    *out = (long long)t - sign * (oh * 3600LL + om * 60LL);
    return NX_OK;
}

void nx_http_date(long long t, char out[30])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 30, "%a, %d %b %Y %H:%M:%S GMT", &tm);
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

void nx_hash128_hex(const void *p, size_t n, char out[33])
{
    XXH128_hash_t h = XXH3_128bits(p, n);
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h.high64,
             (unsigned long long)h.low64);
}

const char *nx_name_check(const char *s, size_t n, size_t *len)
{
    if (!s || strnlen(s, n) != n || !nx_utf8_valid(s, n))
        return NULL;
    size_t end = n;
    while (end && (s[end - 1] == ' ' || s[end - 1] == '\t' || s[end - 1] == '\r' ||
                   s[end - 1] == '\n'))
        end--;
    while (end && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) {
        s++;
        end--;
    }
    if (end == 0 || nx_utf8_len(s, end) > NX_NAME_MAX)
        return NULL;
    *len = end;
    return s;
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
