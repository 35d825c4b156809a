/*
 * offload.c - slow work off the pool thread (nx_req_offload).
 *
 * A handler that must wait on something slow (the sign-in provider's token
 * endpoint, say) hands the wait to a helper thread: the connection is
 * suspended, so the pool thread serves its other connections meanwhile; the
 * helper runs the work, records its outcome on the request, marks it ready
 * and resumes the connection, and the RESPONSE stages then run on the pool
 * thread as for any request. Without a way to suspend (the test harness),
 * the work runs at once, in the caller.
 */
#include "core/nx.h"
#include "http/http_int.h"
#include "core/err.h"

#include <pthread.h>
#include <stdatomic.h>

atomic_int nx_http_offload_count;

static void run_work(nx_http_conn_t *hc)
{
    nx_err_t err = {0};
    int rc = hc->work(&hc->req, hc->work_ud, &err);
    if (rc != NX_OK) {
        hc->err = err;
        if (!hc->err.code)
            nx_err_set(&hc->err, rc, NULL);
    } else if (!hc->resp.status) {
        nx_err_set(&hc->err, NX_EINTERNAL, NULL);
    }
    hc->state = NX_CONN_READY;
}

static void *offload_main(void *p)
{
    nx_http_conn_t *hc = p;
    run_work(hc);
    hc->src->resume(hc->src_ctx);
    atomic_fetch_sub(&nx_http_offload_count, 1);
    return NULL;
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
    hc->state = NX_CONN_OFFLOADED;
    atomic_fetch_add(&nx_http_offload_count, 1);
    hc->src->suspend(hc->src_ctx);
    pthread_t t;
    pthread_attr_t attr;
    bool started = false;
    if (pthread_attr_init(&attr) == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        started = pthread_create(&t, &attr, offload_main, hc) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!started)
        offload_main(hc); /* no thread: run it here, still resumed the same way */
    return NX_OK;
}
