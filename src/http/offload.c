/*
 * offload.c - the threads that run slow work off the pool threads.
 *
 * nx_req_offload suspends a connection and queues it here; one of a fixed
 * set of threads (HTTP_OFFLOAD_THREADS) runs its work - a sign-in's calls
 * to Google, each bounded by its own timeouts - and resumes it. The queue
 * holds NX_OFFLOAD_QUEUE_PER_THREAD waiting requests per thread; when it is
 * full the request is answered 503 at once. A thread per request, as
 * before, let a burst of sign-ins (or a stalled provider) grow threads and
 * their stacks without limit; now what a burst costs is bounded, and only
 * sign-ins wait or are refused while the rest of the API serves on.
 *
 * Shutdown (nx_http_shutdown) first waits until nothing is queued or
 * running, so stopping only wakes the idle threads and joins them.
 */
#include "core/nx.h"
#include "http/http_int.h"
#include "core/err.h"
#include "core/mem.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

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
    int rc = hc->work(&hc->req, hc->work_ud, &err);
    if (rc != NX_OK)
        nx_problem_render(&hc->req, rc, &err);
    else if (hc->state != NX_CONN_READY)
        nx_problem_render(&hc->req, NX_EINTERNAL, &err);
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
        MHD_resume_connection(hc->mhd);
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

bool nx_offload_submit(nx_http_conn_t *hc)
{
    pthread_mutex_lock(&pool.mu);
    bool ok = pool.nthreads > 0 && !pool.quit && pool.n < pool.cap;
    if (ok) {
        /* suspended before a thread can see it, so its resume comes after */
        hc->state = NX_CONN_OFFLOADED;
        atomic_fetch_add(&nx_http_offload_count, 1);
        MHD_suspend_connection(hc->mhd);
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
