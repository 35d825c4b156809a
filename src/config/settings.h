/*
 * settings.h - every setting, read once from the environment (and .env).
 *
 * One table in settings.c declares each setting's name, type, default,
 * bounds and flags. nx_settings_load validates all of them; the result is
 * read-only for the life of the process and published as nx_cfg.
 */
#ifndef NX_CONFIG_SETTINGS_H
#define NX_CONFIG_SETTINGS_H

#include "core/nx.h"

enum nx_jwt_alg { NX_JWT_HS256 = 0, NX_JWT_HS384, NX_JWT_HS512 };
enum nx_ai_provider { NX_AI_LOCAL = 0, NX_AI_GEMINI };
/* How the runtime's connections (APP_/WORKER_DATABASE_URL) reach PostgreSQL:
 * a session each (direct, or a pooler in session mode), or through a pooler
 * in transaction mode (PgBouncer pool_mode=transaction). */
enum nx_db_pool_mode { NX_DB_POOL_SESSION = 0, NX_DB_POOL_TRANSACTION };

struct nx_settings {
    /* seed settings */
    char *database_url;          /* NULL: embedded cluster (owner role) */
    char *app_database_url;      /* runtime login as nexus_app; NULL: DATABASE_URL + SET ROLE */
    char *worker_database_url;   /* worker login as nexus_worker; NULL: likewise */
    int db_pool_mode;            /* enum nx_db_pool_mode */
    char *listen_database_url;   /* direct connection the workers LISTEN on; NULL: see jobs */
    bool debug;
    char *app_name;
    char *jwt_secret;            /* NULL until resolved; see nx_settings_finish */
    char *jwt_previous_secret;   /* still verifies tokens until jwt_previous_until; NULL: none */
    long long jwt_previous_until; /* Unix seconds: the end of the rotation's grace period */
    int jwt_algorithm;           /* enum nx_jwt_alg */
    int jwt_expiration_minutes;
    /* server */
    char *host;
    int port;
    int http_threads;
    int http_max_connections;
    int http_per_ip_connections;
    int http_connection_timeout;  /* seconds */
    int http_offload_threads;     /* slow outbound calls of requests (sign-in) */
    int drain_timeout;            /* seconds */
    int log_level;                /* enum nx_log_level */
    bool log_text;
    char *public_url;
    /* embedded database */
    char *data_dir;
    char *pg_bindir;
    char *pg_user;                /* account the cluster runs as when root */
    /* Google sign-in */
    char *google_client_id;
    char *google_client_secret;
    char *google_discovery_url;
    int signup_credits;
    /* jobs */
    int worker_concurrency;
    int job_max_attempts;
    int job_retry_delay;          /* seconds */
    int job_lease_seconds;
    int job_retention_days;
    int job_poll_ms;
    int job_batch_size;
    int ai_provider;              /* enum nx_ai_provider */
    char *gemini_api_key;
    char *gemini_model;
    char *gemini_base_url;
    int gemini_timeout;           /* seconds */
    /* metrics */
    char *metrics_token;          /* NULL: GET /metrics for loopback clients only */
    int worker_metrics_port;      /* `worker` serves GET /metrics here; 0: not at all */
    /* webhooks */
    int webhook_timeout;             /* seconds */
    int webhook_max_attempts;
    int webhook_retry_base_ms;       /* first retry delay; each next one x4 */
    int webhook_disable_after_hours; /* 0: never disabled */
    bool webhook_allow_http;
    char *webhook_allow_networks;    /* CIDRs, checked at load */
    int webhook_concurrency;         /* deliveries in flight per worker process */
    int credits_low_threshold;
    /* production patterns */
    int rate_limit_requests;      /* per organisation per window; 0: no limit */
    int rate_limit_window;        /* seconds */
    int idempotency_ttl_hours;
    int ai_cache_ttl;             /* seconds; 0: no AI-result cache */
    /* API versions */
    long long api_v1_deprecated_at; /* Unix seconds; 0: v1 not deprecated */
    long long api_v1_sunset;        /* Unix seconds; 0: no sunset announced */
};

/* The loaded settings (NULL before nx_settings_load succeeds). */
extern const nx_settings_t *nx_cfg;

/*
 * Reads the environment, then .env in the working directory for names the
 * environment does not set. On a bad value: NX_EINVAL with err->detail the
 * one-line message ("PORT: must be an integer between 0 and 65535").
 * The settings are heap-owned until nx_settings_release.
 */
int nx_settings_load(nx_settings_t *s, nx_err_t *err);
/*
 * Resolves the JWT secret: checks a configured one (length, placeholder);
 * with none configured in embedded mode, reads or creates
 * NEXUS_DATA_DIR/jwt_secret. Called by verbs that sign or verify tokens.
 */
int nx_settings_finish_secret(nx_settings_t *s, nx_err_t *err);
void nx_settings_release(nx_settings_t *s);
/* The previous JWT secret while its grace period lasts at now (Unix
 * seconds), else NULL. Borrowed from s. */
const char *nx_settings_previous_secret(const nx_settings_t *s, long long now);
/* Publishes s as nx_cfg. */
void nx_settings_publish(const nx_settings_t *s);

/* Writes "NAME=value" lines for every setting, secrets masked. */
void nx_settings_dump(const nx_settings_t *s, int fd);

#endif
