/*
 * settings.c - the one table of settings.
 *
 * Modelled on Redis's static_configs[]: each entry names the environment
 * variable, its type, default, bounds and flags. Values come from the
 * process environment first, then from a .env file in the working directory.
 * Validation happens once at start-up; the first bad value stops the
 * program with a one-line message naming the variable.
 */
#include "core/nx.h"
#include "config/settings.h"
#include "core/cidr.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum type { T_STR, T_INT, T_BOOL, T_ENUM, T_TIME };
enum flags { F_SECRET = 1, F_URL = 2, F_NONEMPTY = 4 };

struct setting {
    const char *name;
    enum type type;
    size_t offset;
    const char *def; /* NULL: unset */
    long long min, max;
    int flags;
    const char *const *choices; /* T_ENUM: index is the stored value */
};

static const char *const jwt_algs[] = {"HS256", "HS384", "HS512", NULL};
static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const formats[] = {"json", "text", NULL};
static const char *const providers[] = {"local", "gemini", NULL};
static const char *const pool_modes[] = {"session", "transaction", NULL};

#define S(field) offsetof(struct nx_settings, field)

static const struct setting table[] = {
    {"DATABASE_URL", T_STR, S(database_url), NULL, 0, 0, F_SECRET, NULL},
    {"APP_DATABASE_URL", T_STR, S(app_database_url), NULL, 0, 0, F_SECRET, NULL},
    {"WORKER_DATABASE_URL", T_STR, S(worker_database_url), NULL, 0, 0, F_SECRET, NULL},
    {"DATABASE_POOL_MODE", T_ENUM, S(db_pool_mode), "session", 0, 0, 0, pool_modes},
    {"DATABASE_LISTEN_URL", T_STR, S(listen_database_url), NULL, 0, 0, F_SECRET, NULL},
    {"DEBUG", T_BOOL, S(debug), "false", 0, 0, 0, NULL},
    {"APP_NAME", T_STR, S(app_name), "NexusAPI", 0, 0, F_NONEMPTY, NULL},
    {"JWT_SECRET_KEY", T_STR, S(jwt_secret), NULL, 0, 0, F_SECRET, NULL},
    {"JWT_PREVIOUS_SECRET_KEY", T_STR, S(jwt_previous_secret), NULL, 0, 0, F_SECRET, NULL},
    {"JWT_PREVIOUS_SECRET_UNTIL", T_TIME, S(jwt_previous_until), NULL, 0, 0, 0, NULL},
    {"JWT_ALGORITHM", T_ENUM, S(jwt_algorithm), "HS256", 0, 0, 0, jwt_algs},
    {"JWT_EXPIRATION_MINUTES", T_INT, S(jwt_expiration_minutes), "60", 1, 43200, 0, NULL},
    {"HOST", T_STR, S(host), "0.0.0.0", 0, 0, F_NONEMPTY, NULL},
    {"PORT", T_INT, S(port), "8000", 0, 65535, 0, NULL},
    {"HTTP_THREADS", T_INT, S(http_threads), "8", 1, 256, 0, NULL},
    {"HTTP_MAX_CONNECTIONS", T_INT, S(http_max_connections), "4096", 16, 60000, 0, NULL},
    {"HTTP_PER_IP_CONNECTIONS", T_INT, S(http_per_ip_connections), "2048", 0, 60000, 0, NULL},
    {"HTTP_CONNECTION_TIMEOUT", T_INT, S(http_connection_timeout), "60", 1, 3600, 0, NULL},
    {"HTTP_OFFLOAD_THREADS", T_INT, S(http_offload_threads), "8", 1, 256, 0, NULL},
    {"DRAIN_TIMEOUT", T_INT, S(drain_timeout), "10", 0, 600, 0, NULL},
    {"LOG_LEVEL", T_ENUM, S(log_level), "info", 0, 0, 0, levels},
    {"LOG_FORMAT", T_ENUM, S(log_text), "json", 0, 0, 0, formats},
    {"PUBLIC_URL", T_STR, S(public_url), "http://localhost:8000", 0, 0, F_URL, NULL},
    {"NEXUS_DATA_DIR", T_STR, S(data_dir), "./.nexus", 0, 0, F_NONEMPTY, NULL},
    {"PG_BINDIR", T_STR, S(pg_bindir), "/usr/lib/postgresql/15/bin", 0, 0, F_NONEMPTY, NULL},
    {"NEXUS_PG_USER", T_STR, S(pg_user), "postgres", 0, 0, F_NONEMPTY, NULL},
    {"GOOGLE_CLIENT_ID", T_STR, S(google_client_id), NULL, 0, 0, 0, NULL},
    {"GOOGLE_CLIENT_SECRET", T_STR, S(google_client_secret), NULL, 0, 0, F_SECRET, NULL},
    {"GOOGLE_DISCOVERY_URL", T_STR, S(google_discovery_url),
     "https://accounts.google.com/.well-known/openid-configuration", 0, 0, F_URL, NULL},
    {"SIGNUP_CREDITS", T_INT, S(signup_credits), "100", 0, 1000000000, 0, NULL},
    {"WORKER_CONCURRENCY", T_INT, S(worker_concurrency), "2", 0, 256, 0, NULL},
    {"JOB_MAX_ATTEMPTS", T_INT, S(job_max_attempts), "3", 1, 100, 0, NULL},
    {"JOB_RETRY_DELAY_SECONDS", T_INT, S(job_retry_delay), "5", 0, 86400, 0, NULL},
    {"JOB_LEASE_SECONDS", T_INT, S(job_lease_seconds), "60", 2, 86400, 0, NULL},
    {"JOB_RETENTION_DAYS", T_INT, S(job_retention_days), "30", 1, 3650, 0, NULL},
    {"JOB_POLL_INTERVAL_MS", T_INT, S(job_poll_ms), "1000", 10, 60000, 0, NULL},
    {"JOB_BATCH_SIZE", T_INT, S(job_batch_size), "10", 1, 1000, 0, NULL},
    {"AI_PROVIDER", T_ENUM, S(ai_provider), "local", 0, 0, 0, providers},
    {"GEMINI_API_KEY", T_STR, S(gemini_api_key), NULL, 0, 0, F_SECRET, NULL},
    {"GEMINI_MODEL", T_STR, S(gemini_model), "gemini-2.0-flash", 0, 0, F_NONEMPTY, NULL},
    {"GEMINI_BASE_URL", T_STR, S(gemini_base_url),
     "https://generativelanguage.googleapis.com/v1beta", 0, 0, F_URL, NULL},
    {"GEMINI_TIMEOUT_SECONDS", T_INT, S(gemini_timeout), "30", 1, 600, 0, NULL},
    {"METRICS_TOKEN", T_STR, S(metrics_token), NULL, 0, 0, F_SECRET, NULL},
    {"WORKER_METRICS_PORT", T_INT, S(worker_metrics_port), "0", 0, 65535, 0, NULL},
    {"WEBHOOK_TIMEOUT_SECONDS", T_INT, S(webhook_timeout), "10", 1, 60, 0, NULL},
    {"WEBHOOK_MAX_ATTEMPTS", T_INT, S(webhook_max_attempts), "8", 1, 20, 0, NULL},
    {"WEBHOOK_RETRY_BASE_MS", T_INT, S(webhook_retry_base_ms), "15000", 10, 3600000, 0, NULL},
    {"WEBHOOK_DISABLE_AFTER_HOURS", T_INT, S(webhook_disable_after_hours), "24", 0, 8760, 0,
     NULL},
    {"WEBHOOK_ALLOW_HTTP", T_BOOL, S(webhook_allow_http), "false", 0, 0, 0, NULL},
    {"WEBHOOK_ALLOW_NETWORKS", T_STR, S(webhook_allow_networks), NULL, 0, 0, 0, NULL},
    {"WEBHOOK_CONCURRENCY", T_INT, S(webhook_concurrency), "8", 0, 256, 0, NULL},
    {"CREDITS_LOW_THRESHOLD", T_INT, S(credits_low_threshold), "50", 0, 1000000000, 0, NULL},
    {"RATE_LIMIT_REQUESTS", T_INT, S(rate_limit_requests), "100", 0, 100000000, 0, NULL},
    {"RATE_LIMIT_WINDOW_SECONDS", T_INT, S(rate_limit_window), "900", 1, 86400, 0, NULL},
    {"IDEMPOTENCY_TTL_HOURS", T_INT, S(idempotency_ttl_hours), "24", 1, 8760, 0, NULL},
    {"AI_CACHE_TTL_SECONDS", T_INT, S(ai_cache_ttl), "3600", 0, 31536000, 0, NULL},
    {"API_V1_DEPRECATED_AT", T_TIME, S(api_v1_deprecated_at), NULL, 0, 0, 0, NULL},
    {"API_V1_SUNSET", T_TIME, S(api_v1_sunset), NULL, 0, 0, 0, NULL},
};

static const char placeholder_secret[] = "change-me-in-production-use-strong-secret";

const nx_settings_t *nx_cfg;

void nx_settings_publish(const nx_settings_t *s) { nx_cfg = s; }

/* ---- .env ---------------------------------------------------------------- */

struct dotenv {
    char *text; /* owned; keys and values point into it */
    const char *keys[128];
    const char *values[128];
    int n;
};

static char *unquote(char *v)
{
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r'))
        v[--n] = '\0';
    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
        v[n - 1] = '\0';
        return v + 1;
    }
    /* unquoted: a " #" starts a comment */
    char *hash = strstr(v, " #");
    if (hash) {
        *hash = '\0';
        n = strlen(v);
        while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            v[--n] = '\0';
    }
    return v;
}

static int dotenv_read(struct dotenv *d, const char *path, nx_err_t *err)
{
    d->text = NULL;
    d->n = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return NX_OK; /* absent is fine */
    size_t cap = 0, len = 0;
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (len + got + 1 > cap) {
            cap = (len + got + 1) * 2;
            char *t = nx_realloc(d->text, cap);
            if (!t) {
                fclose(f);
                return nx_err_set(err, NX_ENOMEM, ".env: out of memory");
            }
            d->text = t;
        }
        memcpy(d->text + len, chunk, got);
        len += got;
        if (len > 1 << 20) {
            fclose(f);
            return nx_err_set(err, NX_EINVAL, ".env: file is larger than 1 MiB");
        }
    }
    fclose(f);
    if (!d->text)
        return NX_OK;
    d->text[len] = '\0';
    int lineno = 0;
    for (char *line = d->text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        while (*line == ' ' || *line == '\t')
            line++;
        if (*line == '\0' || *line == '#' || *line == '\r')
            continue;
        if (strncmp(line, "export ", 7) == 0)
            line += 7;
        char *eq = strchr(line, '=');
        if (!eq)
            return nx_err_set(err, NX_EINVAL, ".env: line %d: expected NAME=value", lineno);
        *eq = '\0';
        char *k = line;
        size_t kn = strlen(k);
        while (kn && (k[kn - 1] == ' ' || k[kn - 1] == '\t'))
            k[--kn] = '\0';
        char *v = eq + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        if (d->n < (int)NX_ARRAY_LEN(d->keys)) {
            d->keys[d->n] = k;
            d->values[d->n] = unquote(v);
            d->n++;
        }
    }
    return NX_OK;
}

static const char *lookup(const struct dotenv *d, const char *name)
{
    const char *v = getenv(name);
    if (v)
        return v;
    for (int i = d->n - 1; i >= 0; i--)
        if (strcmp(d->keys[i], name) == 0)
            return d->values[i];
    return NULL;
}

/* ---- parsing ------------------------------------------------------------- */

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < NX_ARRAY_LEN(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return NX_OK;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return NX_OK;
        }
    }
    return NX_EINVAL;
}

static int apply(nx_settings_t *s, const struct setting *e, const char *v, nx_err_t *err)
{
    void *field = (char *)s + e->offset;
    switch (e->type) {
    case T_STR:
        if (e->flags & F_NONEMPTY && !*v)
            return nx_err_set(err, NX_EINVAL, "%s: must not be empty", e->name);
        if (e->flags & F_URL && *v && strncmp(v, "http://", 7) != 0 &&
            strncmp(v, "https://", 8) != 0)
            return nx_err_set(err, NX_EINVAL, "%s: must be an http:// or https:// URL",
                              e->name);
        if (!*v) { /* empty means unset for optional strings */
            *(char **)field = NULL;
            return NX_OK;
        }
        *(char **)field = nx_strdup(v);
        return *(char **)field ? NX_OK : nx_err_set(err, NX_ENOMEM, "out of memory");
    case T_INT: {
        long long n;
        if (nx_parse_int(v, e->min, e->max, &n) != NX_OK)
            return nx_err_set(err, NX_EINVAL, "%s: must be an integer between %lld and %lld",
                              e->name, e->min, e->max);
        *(int *)field = (int)n;
        return NX_OK;
    }
    case T_TIME:
        if (!*v) {
            *(long long *)field = 0;
            return NX_OK;
        }
        if (nx_parse_rfc3339(v, (long long *)field) != NX_OK || *(long long *)field <= 0)
            return nx_err_set(err, NX_EINVAL,
                              "%s: must be an RFC 3339 date (2027-06-30) or date-time "
                              "(2027-06-30T00:00:00Z)", e->name);
        return NX_OK;
    case T_BOOL:
        if (parse_bool(v, (bool *)field) != NX_OK)
            return nx_err_set(err, NX_EINVAL, "%s: must be true or false", e->name);
        return NX_OK;
    case T_ENUM:
        for (int i = 0; e->choices[i]; i++) {
            if (strcasecmp(v, e->choices[i]) == 0) {
                if (e->offset == S(log_text))
                    *(bool *)field = i == 1;
                else
                    *(int *)field = i;
                return NX_OK;
            }
        }
        {
            char list[128] = "";
            for (int i = 0; e->choices[i]; i++) {
                strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
                strncat(list, e->choices[i], sizeof(list) - strlen(list) - 1);
            }
            return nx_err_set(err, NX_EINVAL, "%s: must be one of %s", e->name, list);
        }
    }
    return NX_EINTERNAL;
}

/* True when HOST only accepts connections from this machine. */
static bool host_is_loopback(const char *host)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

/* What is wrong with a configured secret, or NULL. */
static const char *secret_weakness(const char *secret)
{
    if (strcmp(secret, placeholder_secret) == 0)
        return "the example placeholder is not a secret; set a random value of at least "
               "32 bytes";
    if (strlen(secret) < 32)
        return "must be at least 32 bytes long";
    return NULL;
}

/* A weak secret lets anyone who guesses it mint tokens for any user. DEBUG
 * relaxes the check only where no one else can reach the server. */
static int check_one_secret(const nx_settings_t *s, const char *name, const char *secret,
                            nx_err_t *err)
{
    const char *why = secret ? secret_weakness(secret) : NULL;
    if (!why || (s->debug && host_is_loopback(s->host)))
        return NX_OK;
    return nx_err_set(err, NX_EINVAL, "%s: %s%s", name, why,
                      s->debug ? " (DEBUG=true allows a weak one only while HOST is a "
                                 "loopback address)"
                               : "");
}

/* The previous secret of a rotation verifies tokens until its grace period
 * ends, so it needs that end, and must be a secret of its own. */
static int check_previous(const nx_settings_t *s, nx_err_t *err)
{
    if (!s->jwt_previous_secret)
        return s->jwt_previous_until
                   ? nx_err_set(err, NX_EINVAL, "JWT_PREVIOUS_SECRET_UNTIL: is set but "
                                                "JWT_PREVIOUS_SECRET_KEY is not")
                   : NX_OK;
    if (!s->jwt_previous_until)
        return nx_err_set(err, NX_EINVAL, "JWT_PREVIOUS_SECRET_UNTIL: must be set with "
                                          "JWT_PREVIOUS_SECRET_KEY: the end of its grace period");
    if (s->jwt_secret && strcmp(s->jwt_secret, s->jwt_previous_secret) == 0)
        return nx_err_set(err, NX_EINVAL,
                          "JWT_PREVIOUS_SECRET_KEY: must differ from JWT_SECRET_KEY");
    return check_one_secret(s, "JWT_PREVIOUS_SECRET_KEY", s->jwt_previous_secret, err);
}

static int check_secret(const nx_settings_t *s, nx_err_t *err)
{
    int rc = check_one_secret(s, "JWT_SECRET_KEY", s->jwt_secret, err);
    return rc ? rc : check_previous(s, err);
}

const char *nx_settings_previous_secret(const nx_settings_t *s, long long now)
{
    return s && s->jwt_previous_secret && now < s->jwt_previous_until ? s->jwt_previous_secret
                                                                       : NULL;
}

/* WEBHOOK_ALLOW_NETWORKS: a list of CIDRs (the egress check reads it again). */
static int check_networks(const nx_settings_t *s, nx_err_t *err)
{
    nx_cidr_list_t l;
    char bad[80];
    if (nx_cidr_list_parse(s->webhook_allow_networks, &l, bad, sizeof(bad)) == NX_OK)
        return NX_OK;
    return nx_err_set(err, NX_EINVAL,
                      "WEBHOOK_ALLOW_NETWORKS: \"%s\" is not a network: give addresses or "
                      "CIDRs (127.0.0.0/8, ::1/128), separated by commas, at most %d",
                      bad, NX_CIDR_LIST_MAX);
}

int nx_settings_load(nx_settings_t *s, nx_err_t *err)
{
    memset(s, 0, sizeof(*s));
    struct dotenv d;
    int rc = dotenv_read(&d, ".env", err);
    for (size_t i = 0; rc == NX_OK && i < NX_ARRAY_LEN(table); i++) {
        const struct setting *e = &table[i];
        const char *v = lookup(&d, e->name);
        if (!v)
            v = e->def;
        if (v)
            rc = apply(s, e, v, err);
    }
    nx_free(d.text);
    if (rc == NX_OK)
        rc = check_secret(s, err);
    /* a bearer token anyone may try against /metrics must not be guessable */
    if (rc == NX_OK && s->metrics_token && strlen(s->metrics_token) < 16)
        rc = nx_err_set(err, NX_EINVAL, "METRICS_TOKEN: must be at least 16 characters long");
    /* a pooler sits in front of an external database; the embedded one has none */
    if (rc == NX_OK && s->db_pool_mode == NX_DB_POOL_TRANSACTION && !s->database_url)
        rc = nx_err_set(err, NX_EINVAL,
                        "DATABASE_POOL_MODE: transaction needs DATABASE_URL (the embedded "
                        "database has no pooler in front of it)");
    /* RFC 9745: a resource is not sunset before it is deprecated */
    if (rc == NX_OK && s->api_v1_sunset && s->api_v1_deprecated_at > s->api_v1_sunset)
        rc = nx_err_set(err, NX_EINVAL,
                        "API_V1_SUNSET: must not be earlier than API_V1_DEPRECATED_AT");
    if (rc == NX_OK)
        rc = check_networks(s, err);
    if (rc != NX_OK)
        nx_settings_release(s);
    return rc;
}

/* ---- the JWT secret ------------------------------------------------------ */

static int read_secret_file(const char *path, char **out, nx_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? NX_ENOTFOUND
                               : nx_err_set(err, NX_EINVAL, "JWT_SECRET_KEY: cannot read \"%s\"", path);
    char buf[256];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 32)
        return nx_err_set(err, NX_EINVAL, "JWT_SECRET_KEY: \"%s\" is too short; remove it to "
                          "have a new one generated", path);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    *out = nx_strdup(buf);
    return *out ? NX_OK : NX_ENOMEM;
}

/* The configured secret checked, or the embedded one read or created. */
static int resolve_secret(nx_settings_t *s, nx_err_t *err)
{
    if (s->jwt_secret) {
        int rc = check_secret(s, err);
        if (rc == NX_OK && secret_weakness(s->jwt_secret))
            nx_log(NX_LOG_WARN, "JWT_SECRET_KEY is weak: whoever guesses it can sign in as "
                   "any user; accepted only because DEBUG=true and HOST is a loopback "
                   "address",
                   NX_LS("host", s->host));
        return rc;
    }
    if (s->database_url)
        return nx_err_set(err, NX_EINVAL,
                          "JWT_SECRET_KEY: must be set when DATABASE_URL is set");
    char path[4096];
    snprintf(path, sizeof(path), "%s/jwt_secret", s->data_dir);
    int rc = read_secret_file(path, &s->jwt_secret, err);
    if (rc != NX_ENOTFOUND)
        return rc;
    if (mkdir(s->data_dir, 0700) != 0 && errno != EEXIST)
        return nx_err_set(err, NX_EINVAL, "NEXUS_DATA_DIR: cannot create \"%s\"", s->data_dir);
    unsigned char raw[48];
    char hex[97];
    if (nx_random_bytes(raw, sizeof(raw)) != NX_OK)
        return nx_err_set(err, NX_EINTERNAL, "JWT_SECRET_KEY: could not generate a secret");
    nx_hex(raw, sizeof(raw), hex);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST) /* another process won the race */
            return read_secret_file(path, &s->jwt_secret, err);
        return nx_err_set(err, NX_EINVAL, "JWT_SECRET_KEY: cannot write \"%s\"", path);
    }
    ssize_t w = write(fd, hex, 96);
    close(fd);
    if (w != 96)
        return nx_err_set(err, NX_EINVAL, "JWT_SECRET_KEY: cannot write \"%s\"", path);
    s->jwt_secret = nx_strdup(hex);
    return s->jwt_secret ? NX_OK : NX_ENOMEM;
}

int nx_settings_finish_secret(nx_settings_t *s, nx_err_t *err)
{
    int rc = resolve_secret(s, err);
    if (rc == NX_OK)
        rc = check_previous(s, err); /* against the secret resolved (a generated one too) */
    if (rc == NX_OK && s->jwt_previous_secret &&
        !nx_settings_previous_secret(s, (long long)time(NULL)))
        nx_log0(NX_LOG_WARN, "JWT_PREVIOUS_SECRET_UNTIL has passed: tokens signed with "
                             "JWT_PREVIOUS_SECRET_KEY are refused; remove both settings");
    return rc;
}

void nx_settings_release(nx_settings_t *s)
{
    for (size_t i = 0; i < NX_ARRAY_LEN(table); i++) {
        if (table[i].type == T_STR) {
            char **field = (char **)((char *)s + table[i].offset);
            nx_free(*field);
            *field = NULL;
        }
    }
}

void nx_settings_dump(const nx_settings_t *s, int fd)
{
    for (size_t i = 0; i < NX_ARRAY_LEN(table); i++) {
        const struct setting *e = &table[i];
        const void *field = (const char *)s + e->offset;
        char line[1024];
        switch (e->type) {
        case T_STR: {
            const char *v = *(char *const *)field;
            snprintf(line, sizeof(line), "%s=%s\n", e->name,
                     !v ? "" : (e->flags & F_SECRET) ? "********" : v);
            break;
        }
        case T_INT:
            snprintf(line, sizeof(line), "%s=%d\n", e->name, *(const int *)field);
            break;
        case T_TIME: {
            char when[32] = "";
            time_t t = (time_t) * (const long long *)field;
            struct tm tm;
            if (t && gmtime_r(&t, &tm))
                strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
            snprintf(line, sizeof(line), "%s=%s\n", e->name, when);
            break;
        }
        case T_BOOL:
            snprintf(line, sizeof(line), "%s=%s\n", e->name,
                     *(const bool *)field ? "true" : "false");
            break;
        case T_ENUM: {
            int idx = e->offset == S(log_text) ? (int)*(const bool *)field
                                              : *(const int *)field;
            snprintf(line, sizeof(line), "%s=%s\n", e->name, e->choices[idx]);
            break;
        }
        }
        ssize_t w = write(fd, line, strlen(line));
        NX_UNUSED(w);
    }
}
