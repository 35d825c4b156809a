/*
 * server.c - the libmicrohttpd daemon: start, drain, stop.
 *
 * Internal thread pool (HTTP_THREADS) on epoll, fed by an acceptor thread of
 * ours. Left to itself, each pool thread accepts from the shared listen
 * socket, up to ten connections per wake-up, so a burst of clients lands on
 * a few threads while others sit idle (64 benchmark connections were seen
 * spread 18/16/13/12/5/0/0/0): the crowded threads' clients wait longest and
 * the idle threads' database connections go unused. MHD_add_connection
 * places each connection by its descriptor number, and concurrent clients
 * hold consecutive descriptors, so they spread evenly over the pool.
 * Limits that keep the server alive under abuse:
 *   - CONNECTION_MEMORY_LIMIT (17.5 KiB) bounds what one connection may use
 *     for its request line and headers: a bigger header gets MHD's own 431
 *     and the connection closed;
 *   - CONNECTION_LIMIT / PER_IP_CONNECTION_LIMIT bound sockets;
 *   - CONNECTION_TIMEOUT closes idle connections. MHD restarts it on every
 *     byte, so a client trickling bytes is only bounded by the per-IP cap:
 *     run a reverse proxy with request deadlines in front in production.
 * Shutdown: mark draining (responses now carry Connection: close), take the
 * connections the kernel has already completed (a load balancer has sent a
 * request on them: shutting the socket down would reset them unanswered),
 * stop accepting (the listen socket is shut down: new clients are refused
 * at once, which a load balancer may retry elsewhere), wait for in-flight
 * requests up to the drain timeout (and, for up to FIRST_REQUEST_GRACE_US,
 * for connections opened before the signal whose request has not come yet:
 * from the client's side it is in flight too), wait for offloaded work (a
 * suspended connection must be resumed before MHD_stop_daemon), then stop
 * the daemon, which closes idle connections and joins the pool threads;
 * their per-thread database connections close at thread exit. Last the idle
 * offload threads are joined.
 */
#include "core/nx.h"
#include "http/server.h"
#include "http/conn.h"
#include "http/http_int.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * Each connection's pool holds its request line and headers. libmicrohttpd
 * zeroes the whole pool between requests, so every kept-alive connection
 * keeps all of it resident: this size is the memory an idle connection
 * costs. 17.5 KiB admits an 8 KiB access token with room to spare and still
 * reaches our 401 for a 16 KiB one (so it is refused as a token, not as a
 * header); bigger headers get 431.
 */
#define NX_HTTP_MEMORY_LIMIT (17 * 1024 + 512)
#define NX_HTTP_BACKLOG 1024
/* How long a connection opened before shutdown may take to send its
 * request (bounded by the drain timeout): a load balancer's follows its
 * connect at once; an idle keep-alive connection only delays the exit. */
#define FIRST_REQUEST_GRACE_US (1000 * 1000)

static struct MHD_Daemon *daemon_;
static int listen_fd = -1;
static pthread_t acceptor;
static atomic_bool accepting;
static atomic_bool draining;

bool nx_http_draining(void) { return atomic_load(&draining); }

int nx_http_inflight(void) { return atomic_load(&nx_http_inflight_count); }

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    nx_log(NX_LOG_WARN, "http server", NX_LS("detail", msg));
}

static int resolve(const char *host, int port, struct sockaddr_storage *ss, nx_err_t *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res)
        return nx_err_set(err, NX_EINVAL, "HOST: cannot resolve \"%s\"", host);
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    return NX_OK;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int open_listener(const nx_http_opts_t *o, const struct sockaddr_storage *ss,
                         int *bound_port, nx_err_t *err)
{
    socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in);
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    /* An IPv6 address means IPv6 only, as HOST says (no mapped IPv4). */
    if (fd >= 0 && ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, NX_HTTP_BACKLOG) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        nx_err_set(err, NX_EUNAVAILABLE, "could not listen on %s:%d: %s", o->host, o->port,
                   strerror(e));
        return -1;
    }
    struct sockaddr_storage got = {0};
    len = sizeof(got);
    getsockname(fd, (struct sockaddr *)&got, &len);
    *bound_port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                                  : ((struct sockaddr_in *)&got)->sin_port);
    return fd;
}

/* Accepts until nx_http_shutdown shuts the listen socket down.
 * MHD_add_connection closes a connection it cannot take (over a limit). */
static void *accept_loop(void *arg)
{
    (void)arg;
    int64_t warned_us = 0;
    while (atomic_load(&accepting)) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(listen_fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            MHD_add_connection(daemon_, fd, (struct sockaddr *)&peer, len);
            continue;
        }
        int e = errno;
        if (!atomic_load(&accepting))
            break;
        if (e == EINTR || e == ECONNABORTED || e == EAGAIN || e == EPROTO)
            continue;
        /* Out of descriptors or memory, or a network error the kernel
         * passes on: never give up accepting, never spin. */
        if (nx_time_mono_us() - warned_us > 10 * 1000000) {
            warned_us = nx_time_mono_us();
            nx_log(NX_LOG_WARN, "cannot accept connections", NX_LS("detail", strerror(e)));
        }
        sleep_ms(10);
    }
    return NULL;
}

int nx_http_start(const nx_http_opts_t *o, int *bound_port, nx_err_t *err)
{
    if (nx_router_init(o->groups, o->ngroups, err) != NX_OK ||
        nx_pipeline_init(o->stages, o->nstages, err) != NX_OK)
        return err->code;
    struct sockaddr_storage ss = {0};
    if (resolve(o->host, o->port, &ss, err) != NX_OK)
        return err->code;
    if (nx_offload_start(o->offload_threads > 0 ? o->offload_threads : 1, err) != NX_OK)
        return err->code;
    listen_fd = open_listener(o, &ss, bound_port, err);
    if (listen_fd < 0) {
        nx_offload_stop();
        return err->code;
    }
    /* MHD gets no listen socket: every connection comes from the acceptor
     * through MHD_add_connection, which needs MHD_USE_ITC to wake the pool.
     * microhttpd.h calls this flag incompatible with a thread pool, but
     * 0.9.75 runs the pool with it; the e2e test that a burst of clients
     * spreads over the pool threads would notice if a version did not. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    atomic_store(&draining, false);
    errno = 0;
    daemon_ = MHD_start_daemon(
        flags, 0, NULL, NULL, nx_http_on_request, NULL,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)o->threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)o->per_ip_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->connection_timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)NX_HTTP_MEMORY_LIMIT,
        MHD_OPTION_NOTIFY_COMPLETED, nx_http_on_completed, NULL,
        MHD_OPTION_END);
    int rc = 0;
    if (daemon_) {
        atomic_store(&accepting, true);
        rc = pthread_create(&acceptor, NULL, accept_loop, NULL);
        if (rc == 0)
            return NX_OK;
        nx_err_log(err, "pthread_create: %s", strerror(rc));
        MHD_stop_daemon(daemon_);
        daemon_ = NULL;
    } else {
        nx_err_log(err, "MHD_start_daemon: %s", errno ? strerror(errno) : "failed");
    }
    close(listen_fd);
    listen_fd = -1;
    nx_offload_stop();
    return nx_err_set(err, NX_EUNAVAILABLE, "could not start the HTTP server on %s:%d", o->host,
                      o->port);
}

/* Hands MHD the connections already waiting in the listen backlog. */
static void take_backlog(void)
{
    int flags = fcntl(listen_fd, F_GETFL);
    if (flags < 0 || fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) != 0)
        return;
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(listen_fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && errno == EINTR)
            continue;
        if (fd < 0)
            return;
        MHD_add_connection(daemon_, fd, (struct sockaddr *)&peer, len);
    }
}

static unsigned open_connections(void)
{
    const union MHD_DaemonInfo *i =
        MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return i ? i->num_connections : 0;
}

int nx_http_shutdown(int drain_seconds)
{
    if (!daemon_)
        return 0;
    atomic_store(&draining, true);
    atomic_store(&accepting, false);
    take_backlog();
    /* Shutting a listening socket down wakes the acceptor's accept4. */
    shutdown(listen_fd, SHUT_RDWR);
    pthread_join(acceptor, NULL);
    int64_t now = nx_time_mono_us();
    int64_t deadline = now + (int64_t)drain_seconds * 1000000;
    int64_t grace = now + FIRST_REQUEST_GRACE_US;
    while (now < deadline &&
           (nx_http_inflight() > 0 || (now < grace && open_connections() > 0))) {
        sleep_ms(10);
        now = nx_time_mono_us();
    }
    int left = nx_http_inflight();
    if (left > 0)
        nx_log(NX_LOG_WARN, "drain timeout reached", NX_LI("in_flight", left));
    /* MHD may not be stopped with suspended connections: let offloaded work
     * (bounded by its own outbound timeouts) finish and resume them. */
    for (int i = 0; atomic_load(&nx_http_offload_count) > 0; i++) {
        if (i % 500 == 0)
            nx_log(NX_LOG_WARN, "waiting for offloaded requests",
                   NX_LI("count", atomic_load(&nx_http_offload_count)));
        sleep_ms(10);
    }
    MHD_stop_daemon(daemon_);
    daemon_ = NULL;
    nx_offload_stop();
    close(listen_fd);
    listen_fd = -1;
    return left;
}
