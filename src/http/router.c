/*
 * router.c - matches (method, path) against the route table.
 *
 * The table (api/routes.c) is data: groups of {method, pattern, handler,
 * flags} mounted under a prefix ("/api/v1", "/api/v2", or none). At start-up
 * each route's full pattern (prefix + pattern) is copied into a fixed array
 * and split into segments, literal or {param}, pointing into that copy:
 * matching then allocates nothing but the parameter copies. A match tells
 * the request its full pattern (for logs) and its group's API version.
 *
 * Path rules (documented in openapi.json): paths are case-sensitive; a
 * trailing slash (other than "/" itself) or an empty segment never matches,
 * so "/health/" is a 404 rather than a redirect; a literal segment beats a
 * {param} in the same position; HEAD is accepted wherever GET is. A path
 * that matches some route under another method is a 405 whose Allow header
 * lists the methods that path accepts.
 */
#include "core/nx.h"
#include "http/http_int.h"
#include "core/arena.h"

#include <stdio.h>
#include <string.h>

#define MAX_ROUTES NX_HTTP_MAX_ROUTES
#define MAX_SEGS 16
#define MAX_PATTERN 96

struct seg {
    const char *s; /* literal text; NULL for a {param} */
    size_t n;
};

struct compiled {
    const nx_route_t *route;
    int version;             /* its group's */
    char pattern[MAX_PATTERN]; /* the group's prefix and the route's pattern */
    struct seg segs[MAX_SEGS]; /* pointing into pattern */
    int nsegs;
    int nparams;
};

static struct compiled table[MAX_ROUTES];
static size_t ntable;

/* Splits a path into segments; -1 for an empty segment or too many. */
static int split(const char *path, struct seg *out)
{
    if (path[0] != '/')
        return -1;
    if (path[1] == '\0')
        return 0;
    int n = 0;
    const char *p = path + 1;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0 || n == MAX_SEGS)
            return -1;
        out[n].s = p;
        out[n].n = len;
        n++;
        if (!e)
            return n;
        p = e + 1;
    }
}

static int compile(struct compiled *c, const nx_route_group_t *g, const nx_route_t *r,
                   nx_err_t *err)
{
    c->route = r;
    c->version = g->version;
    c->nparams = 0;
    int n = snprintf(c->pattern, sizeof(c->pattern), "%s%s", g->prefix, r->pattern);
    if (n < 0 || (size_t)n >= sizeof(c->pattern))
        return nx_err_set(err, NX_EINVAL, "route \"%s%s\" is too long", g->prefix, r->pattern);
    c->nsegs = split(c->pattern, c->segs);
    if (c->nsegs < 0 || !r->handler || !r->method)
        return nx_err_set(err, NX_EINVAL, "bad route \"%s\"", c->pattern);
    for (int k = 0; k < c->nsegs; k++) {
        struct seg *s = &c->segs[k];
        if (s->n >= 3 && s->s[0] == '{' && s->s[s->n - 1] == '}') {
            s->s = NULL;
            if (++c->nparams > NX_MAX_PATH_PARAMS)
                return nx_err_set(err, NX_EINVAL, "too many parameters in \"%s\"",
                                  c->pattern);
        }
    }
    return NX_OK;
}

int nx_router_init(const nx_route_group_t *groups, size_t ngroups, nx_err_t *err)
{
    size_t n = 0;
    for (size_t g = 0; g < ngroups; g++) {
        for (size_t i = 0; i < groups[g].nroutes; i++) {
            if (n == MAX_ROUTES)
                return nx_err_set(err, NX_EINVAL, "too many routes (at most %d)", MAX_ROUTES);
            if (compile(&table[n++], &groups[g], &groups[g].routes[i], err) != NX_OK)
                return err->code;
        }
    }
    ntable = n;
    return NX_OK;
}

size_t nx_http_route_count(void) { return ntable; }

const char *nx_http_route_pattern(size_t i) { return i < ntable ? table[i].pattern : NULL; }

/* Literal-segment mask (first segment most significant), or -1: no match. */
static long score(const struct compiled *c, const struct seg *segs, int nsegs)
{
    if (c->nsegs != nsegs)
        return -1;
    long mask = 0;
    for (int k = 0; k < nsegs; k++) {
        mask <<= 1;
        if (!c->segs[k].s)
            continue;
        if (c->segs[k].n != segs[k].n || memcmp(c->segs[k].s, segs[k].s, segs[k].n) != 0)
            return -1;
        mask |= 1;
    }
    return mask;
}

static bool method_ok(const char *route_method, const char *method)
{
    return strcmp(route_method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0);
}

static void allow_add(char *allow, size_t size, const char *m)
{
    size_t mlen = strlen(m);
    for (const char *p = allow; (p = strstr(p, m)) != NULL; p += mlen)
        if ((p == allow || p[-1] == ' ') && (p[mlen] == ',' || p[mlen] == '\0'))
            return;
    size_t len = strlen(allow);
    snprintf(allow + len, size - len, "%s%s", len ? ", " : "", m);
}

static int fill_params(nx_req_t *req, const struct compiled *c, const struct seg *segs)
{
    req->nparams = 0;
    for (int k = 0; k < c->nsegs; k++) {
        if (c->segs[k].s)
            continue;
        char *v = nx_arena_strndup(req->arena, segs[k].s, segs[k].n);
        if (!v)
            return NX_ENOMEM;
        req->params[req->nparams++] = v;
    }
    return NX_OK;
}

int nx_router_match(nx_req_t *req, const char *method, const char *path, nx_err_t *err)
{
    struct seg segs[MAX_SEGS];
    int nsegs = split(path, segs);
    if (nsegs < 0)
        return nx_err_set(err, NX_ENOTFOUND, "No route matches this path.");
    const struct compiled *best = NULL;
    long best_score = -1;
    bool path_known = false;
    char allow[sizeof(err->allow)] = "";
    for (size_t i = 0; i < ntable; i++) {
        long sc = score(&table[i], segs, nsegs);
        if (sc < 0)
            continue;
        path_known = true;
        allow_add(allow, sizeof(allow), table[i].route->method);
        if (strcmp(table[i].route->method, "GET") == 0)
            allow_add(allow, sizeof(allow), "HEAD");
        if (method_ok(table[i].route->method, method) && sc > best_score) {
            best = &table[i];
            best_score = sc;
        }
    }
    if (!best) {
        if (!path_known)
            return nx_err_set(err, NX_ENOTFOUND, "No route matches this path.");
        if (!err->code)
            snprintf(err->allow, sizeof(err->allow), "%s", allow);
        return nx_err_set(err, NX_EMETHOD, "This path does not accept the %s method.",
                          nx_mw_request_id_sane(method) && strlen(method) <= 16 ? method
                                                                                 : "given");
    }
    req->route_entry = best->route;
    req->route_id = (int)(best - table);
    req->route = best->pattern;
    req->api_version = best->version;
    if (fill_params(req, best, segs) != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    return NX_OK;
}
