/*
 * httpc.h - the one outbound HTTP client (the only user of libcurl).
 *
 * Every call has connect and total timeouts, a response-size cap, TLS
 * verification, no redirects, https only unless the caller allows http, and
 * "User-Agent: nexusapi/VERSION". The response (status, body, a few headers)
 * lives on the caller's arena. Transport failures are NX_EUNAVAILABLE with a
 * client-safe detail naming req->service and libcurl's text in log_detail.
 */
#ifndef NX_HTTPC_HTTPC_H
#define NX_HTTPC_HTTPC_H

#include "core/nx.h"

#include <sys/socket.h>

#define NX_HTTPC_MAX_BODY (1024 * 1024) /* default response-size cap */
#define NX_HTTPC_FORM "application/x-www-form-urlencoded"
#define NX_HTTPC_JSON "application/json"

struct json_t;

/* Polled while a call runs: true abandons it (a stopping worker). */
typedef bool (*nx_httpc_cancel_cb)(void *ud);
/* Called with every address about to be connected to: false refuses it, and
 * the connection uses exactly the address that was checked. */
typedef bool (*nx_httpc_addr_cb)(const struct sockaddr *addr, socklen_t len, void *ud);

typedef struct nx_httpc_req {
    const char *method;          /* "GET" (NULL means GET) or "POST" */
    const char *url;
    const char *service;         /* the other side in error details: "gemini" */
    const char *const *headers;  /* extra "Name: value" lines, NULL-terminated */
    const char *body;            /* POST body, body_len bytes */
    size_t body_len;
    const char *content_type;    /* of body: NX_HTTPC_FORM, NX_HTTPC_JSON, ... */
    const char *basic_user;      /* HTTP Basic credentials when non-NULL */
    const char *basic_password;
    long connect_timeout_ms;     /* 0: 5 s */
    long timeout_ms;             /* 0: 10 s, the whole call */
    size_t max_body;             /* 0: NX_HTTPC_MAX_BODY */
    bool truncate;               /* keep the first max_body bytes, no error */
    bool allow_http;             /* plain http as well as https */
    nx_httpc_cancel_cb cancel;
    nx_httpc_addr_cb check_addr; /* also turns proxies off, so it sees the target */
    void *ud;                    /* for cancel and check_addr */
} nx_httpc_req_t;

/* Why a call failed, for callers that word the error themselves. */
enum nx_httpc_fail {
    NX_HTTPC_OK,
    NX_HTTPC_UNREACHABLE, /* DNS, connect, TLS, protocol */
    NX_HTTPC_TIMEOUT,
    NX_HTTPC_TOOBIG,
    NX_HTTPC_ABORTED,
    NX_HTTPC_REFUSED, /* check_addr said no */
    NX_HTTPC_BADURL,  /* malformed, or a scheme not allowed */
};

typedef struct nx_httpc_resp {
    enum nx_httpc_fail fail;
    long status;        /* HTTP status; 0 when none arrived */
    char *body;         /* arena, NUL-terminated ("" when empty) */
    size_t len;
    bool truncated;     /* req->truncate cut the body at max_body */
    long max_age;       /* Cache-Control max-age, -1 when absent */
    bool no_store;      /* Cache-Control no-store or no-cache */
    char *content_type; /* arena; NULL when absent */
    char *location;     /* arena; NULL when absent (never followed) */
} nx_httpc_resp_t;

/* Process-wide libcurl set-up; runs once however often it is called. */
void nx_httpc_global_init(void);

/*
 * Performs req and fills *resp (arena). Any HTTP status is NX_OK: the caller
 * judges it. NX_EUNAVAILABLE (unreachable, timeout, too big, abandoned, bad
 * URL), NX_EFORBIDDEN (check_addr refused every address), NX_ENOMEM.
 */
int nx_httpc_perform(nx_arena_t *arena, const nx_httpc_req_t *req, nx_httpc_resp_t *resp,
                     nx_err_t *err);

/* Decodes resp's body as JSON; the value is released with the arena.
 * NX_EUNAVAILABLE naming service when the body is not JSON, NX_ENOMEM. */
int nx_httpc_json(nx_arena_t *arena, const nx_httpc_resp_t *resp, const char *service,
                  struct json_t **out, nx_err_t *err);

/* An absolute URL's parts as libcurl reads it (arena strings). */
typedef struct nx_httpc_url {
    char *scheme;     /* lower case */
    char *host;       /* as libcurl normalises it; an IPv6 literal in brackets */
    int port;         /* the URL's, or its scheme's default */
    bool credentials; /* a user name or password is present */
} nx_httpc_url_t;

/* Parses url with libcurl (any scheme). NX_EINVAL when it is not an
 * absolute URL libcurl accepts (detail says why), NX_ENOMEM. */
int nx_httpc_url_parse(nx_arena_t *arena, const char *url, nx_httpc_url_t *out,
                       nx_err_t *err);

/* s percent-encoded for a URL query or form (RFC 3986 unreserved kept);
 * arena, NULL on allocation failure. */
char *nx_httpc_escape(nx_arena_t *arena, const char *s);

/* "k1=v1&k2=v2" from NULL-terminated name/value pairs, values escaped and
 * NULL values skipped; arena, NULL on allocation failure. */
char *nx_httpc_form(nx_arena_t *arena, const char *const *pairs);

#endif
