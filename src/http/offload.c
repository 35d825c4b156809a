/*
 * offload.c - the threads that run slow work off the pool threads.
 *
 * A handler that must wait on something slow (a sign-in's calls to the
 * provider, each bounded by its own timeouts) calls nx_req_offload: the
 * connection is suspended and queued here; one of a fixed set of threads
 * (HTTP_OFFLOAD_THREADS) runs its work, records the outcome on the request,
 * marks it ready and resumes it, and the RESPONSE stages then run on the
 * pool thread as for any request. The queue holds
 * NX_OFFLOAD_QUEUE_PER_THREAD waiting requests per thread; when it is full
 * the request is answered 503 at once. A thread per request would let a
 * burst of sign-ins (or a stalled provider) grow threads and their stacks
 * without limit; this way what a burst costs is bounded, and only sign-ins
 * wait or are refused while the rest of the API serves on.
 *
 * Without a way to suspend (the in-process test harness) the work runs at
 * once, in the caller. Shutdown (nx_http_shutdown) first waits until
 * nothing is queued or running, so stopping only wakes the idle threads
 * and joins them.
 */
#include "core/nx.h"
#include "http/http_int.h"
#include "core/err.h"
#include "core/mem.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

atomic_int nx_http_offload_count;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    nx_http_conn_t **queue; /* ring of cap entries */
    int cap, head, n;
    pthread_t *threads;
    int nthreads;
    bool quit;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void run_work(nx_http_conn_t *hc)
{
    nx_err_t err = {0};
    const nx_trace_t *outer = nx_trace_enter(&hc->req.trace); /* logs, outbound calls */
    int rc = hc->work(&hc->req, hc->work_ud, &err);
    nx_trace_enter(outer);
    if (rc != NX_OK) {
        hc->err = err;
        if (!hc->err.code)
            nx_err_set(&hc->err, rc, NULL);
    } else if (!hc->resp.status) {
        nx_err_set(&hc->err, NX_EINTERNAL, NULL);
    }
    hc->state = NX_CONN_READY;
}

static void *offload_main(void *arg)
{
    NX_UNUSED(arg);
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        while (!pool.quit && pool.n == 0)
            pthread_cond_wait(&pool.cv, &pool.mu);
        if (pool.n == 0)
            break; /* quit, and nothing left to run */
        nx_http_conn_t *hc = pool.queue[pool.head];
        pool.head = (pool.head + 1) % pool.cap;
        pool.n--;
        pthread_mutex_unlock(&pool.mu);
        run_work(hc);
        hc->src->resume(hc->src_ctx);
        atomic_fetch_sub(&nx_http_offload_count, 1);
        pthread_mutex_lock(&pool.mu);
    }
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

int nx_offload_start(int threads, nx_err_t *err)
{
    NX_ASSERT(!pool.threads && threads > 0);
    pool.cap = threads * NX_OFFLOAD_QUEUE_PER_THREAD;
    pool.queue = nx_calloc((size_t)pool.cap, sizeof(*pool.queue));
    pool.threads = nx_calloc((size_t)threads, sizeof(*pool.threads));
    pool.head = pool.n = pool.nthreads = 0;
    pool.quit = false;
    if (!pool.queue || !pool.threads) {
        nx_offload_stop();
        return nx_err_set(err, NX_ENOMEM, "could not start the HTTP offload threads");
    }
    for (; pool.nthreads < threads; pool.nthreads++) {
        int rc = pthread_create(&pool.threads[pool.nthreads], NULL, offload_main, NULL);
        if (rc != 0) {
            nx_err_log(err, "pthread_create: %s", strerror(rc));
            nx_offload_stop();
            return nx_err_set(err, NX_EUNAVAILABLE, "could not start the HTTP offload threads");
        }
    }
    return NX_OK;
}

/* Suspends hc's connection and queues it for an offload thread; false
 * (nothing done) when the queue is full. */
static bool submit(nx_http_conn_t *hc)
{
    pthread_mutex_lock(&pool.mu);
    bool ok = pool.nthreads > 0 && !pool.quit && pool.n < pool.cap;
    if (ok) {
        /* suspended before a thread can see it, so its resume comes after */
        hc->state = NX_CONN_OFFLOADED;
        atomic_fetch_add(&nx_http_offload_count, 1);
        hc->src->suspend(hc->src_ctx);
        pool.queue[(pool.head + pool.n) % pool.cap] = hc;
        pool.n++;
        pthread_cond_signal(&pool.cv);
    }
    pthread_mutex_unlock(&pool.mu);
    return ok;
}

void nx_offload_stop(void)
{
    pthread_mutex_lock(&pool.mu);
    pool.quit = true;
    pthread_cond_broadcast(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
    for (int i = 0; i < pool.nthreads; i++)
        pthread_join(pool.threads[i], NULL);
    nx_free(pool.threads);
    nx_free(pool.queue);
    pool.threads = NULL;
    pool.queue = NULL;
    pool.nthreads = pool.cap = pool.head = pool.n = 0;
}

int nx_req_offload(nx_req_t *req, nx_work_cb work, void *ud)
{
    nx_http_conn_t *hc = nx_http_conn_of(req);
    NX_ASSERT(!hc->work);
    hc->work = work;
    hc->work_ud = ud;
    if (!hc->src || !hc->src->suspend) {
        run_work(hc);
        return NX_OK;
    }
    if (submit(hc))
        return NX_OK;
    hc->work = NULL; /* the queue is full: answered at once, nothing suspended */
    hc->work_ud = NULL;
    hc->err.retry_after = NX_OFFLOAD_RETRY_AFTER;
    return nx_err_set(&hc->err, NX_EUNAVAILABLE,
                      "The server is busy with other slow requests (sign-ins); retry shortly.");
}
