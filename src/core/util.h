/*
 * util.h - small helpers every module needs: UUIDs, random bytes, time,
 * UTF-8 validation, bounded integer parsing.
 */
#ifndef NX_CORE_UTIL_H
#define NX_CORE_UTIL_H

#include "core/nx.h"

#define NX_UUID_LEN 36

/* Fills buf with n bytes from the kernel CSPRNG. NX_OK or NX_EINTERNAL. */
int nx_random_bytes(void *buf, size_t n);
/* Writes a random (v4) UUID and its NUL into out[37]. */
void nx_uuid_v4(char out[NX_UUID_LEN + 1]);
/* True for a canonical 8-4-4-4-12 hex UUID (either case). */
bool nx_uuid_valid(const char *s);

/* Current UTC time as RFC 3339 ("2026-11-24T01:50:00.123Z"; millis if
 * with_ms). */
void nx_time_now_rfc3339(char *out, size_t size, bool with_ms);
/* Parses an RFC 3339 date ("2027-01-31", midnight UTC) or date-time
 * ("2027-01-31T12:00:00Z", "...T12:00:00.5+02:00") into Unix seconds.
 * NX_OK or NX_EINVAL. */
int nx_parse_rfc3339(const char *s, long long *out);
/* Unix seconds as an HTTP date (IMF-fixdate, RFC 9110 5.6.7):
 * "Sun, 06 Nov 1994 08:49:37 GMT". */
void nx_http_date(long long t, char out[30]);
/* Monotonic clock in microseconds. */
int64_t nx_time_mono_us(void);

/* True when s[0..n) is well-formed UTF-8 (no overlongs, no surrogates). */
bool nx_utf8_valid(const char *s, size_t n);
/* Length of the longest well-formed UTF-8 prefix of s[0..n). */
size_t nx_utf8_valid_prefix(const char *s, size_t n);
/* Number of code points in valid UTF-8. */
size_t nx_utf8_len(const char *s, size_t n);
/* The longest length <= max at which s[0..n) can be cut without splitting a
 * character (a lead byte and its continuation bytes stay together). */
size_t nx_utf8_cut(const char *s, size_t n, size_t max);
/* Copies at most size - 1 bytes of s into out, cut on a character boundary,
 * NUL-terminated; returns the bytes copied. */
size_t nx_utf8_copy(char *out, size_t size, const char *s);


#define NX_NAME_MAX 255 /* characters of an organisation's or a user's name */

/* The name rule, for organisations and users alike: a name is stored
 * without its surrounding blanks and is then 1 to NX_NAME_MAX characters
 * of valid UTF-8. Returns where the name starts in s[0..n) and stores its
 * length in *len, or NULL when s breaks the rule. */
const char *nx_name_check(const char *s, size_t n, size_t *len);

/* Parses a whole decimal integer in [min, max]. NX_OK or NX_EINVAL. */
int nx_parse_int(const char *s, long long min, long long max, long long *out);

/* FNV-1a (64-bit) of a string, or of n bytes: fast and stable, not for
 * untrusted keys an attacker could choose to collide. */
uint64_t nx_hash_str(const char *s);
/* A 128-bit hash of n bytes (XXH3), as 32 lower-case hex digits and a NUL
 * into out[33]: a fingerprint of a body (ETags), fast on large inputs; not
 * for secrets. */
void nx_hash128_hex(const void *p, size_t n, char out[33]);

/* Lower-case hex of n bytes into out (2n + 1 bytes). */
void nx_hex(const unsigned char *in, size_t n, char *out);
/* The bytes of exactly 2n hex digits (either case) into out[n]. NX_OK, or
 * NX_EINVAL for any other length or character. */
int nx_unhex(const char *hex, unsigned char *out, size_t n);

#endif
