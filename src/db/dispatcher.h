/*
 * dispatcher.h - a worker pool around one database connection: a
 * dispatcher thread that owns the connection (as nexus_worker) and runner
 * threads that never touch the database. The job workers (jobs/worker.c)
 * and the webhook senders (webhooks/delivery.c) are two such pools; each
 * brings its queue as hooks, the dispatcher brings the connection, the
 * wake-ups, the timers and the stop sequence.
 */
#ifndef NX_DB_DISPATCHER_H
#define NX_DB_DISPATCHER_H

#include "core/nx.h"
#include "db/target.h"

#include <stdatomic.h>
#include <stdint.h>

/* Rows a prune hook deletes at most per call: a full batch means a backlog,
 * and the next prune comes 200 ms later instead of an hour. */
#define NX_DB_PRUNE_BATCH 5000

/* How the dispatcher learns of new work besides its poll. */
enum nx_db_wake {
    NX_DB_WAKE_QUEUE, /* its connection LISTENs (a server session of its own) */
    NX_DB_WAKE_OWN,   /* a LISTEN connection of its own (DATABASE_LISTEN_URL) */
    NX_DB_WAKE_POLL,  /* none: its connection goes through a transaction pooler */
};

/* What a write-back makes due: a claim at once (what it wrote freed work
 * up), or one at claim_at (a retry; monotonic us, 0: none). */
typedef struct nx_db_written {
    bool claim_now;
    int64_t claim_at;
} nx_db_written_t;

/*
 * The pool's queue. ctx is the caller's; an item is one claimed unit of
 * work (a job attempt, a run of deliveries), opaque here. Every hook but
 * run is called on the dispatcher thread with its connection db and a
 * scratch arena reset every round.
 */
typedef struct nx_db_dispatcher_hooks {
    /* Runner thread: does the item's work, its outcome kept on the item. */
    void (*run)(void *ctx, void *item);
    /* Claims up to limit items into items[] (*n), the last claimed first:
     * they run in claim order. On an error, *n counts what came before it (the dispatcher logs
     * the error and frees those). A claim that gets limit wants another. */
    int (*claim)(void *ctx, nx_db_t *db, nx_arena_t *scratch, int limit, void **items, int *n,
                 nx_err_t *err);
    /* Writes the outcomes of items[0..n) back and frees the items; returns
     * true instead, freeing nothing, when they are to be written next round
     * (the connection was lost). *due says what the writing made due. */
    bool (*write_back)(void *ctx, nx_db_t *db, nx_arena_t *scratch, void **items, int n,
                       nx_db_written_t *due);
    /* Extends the leases of items[0..n): running, or held for a write-back. */
    void (*renew)(void *ctx, nx_db_t *db, nx_arena_t *scratch, void **items, int n);
    /* Deletes one batch of what is past retention; true when the batch was
     * full. Not called while stopping. */
    bool (*prune)(void *ctx, nx_db_t *db, nx_arena_t *scratch);
    /* Optional: other upkeep due at now; returns when it is next due. Not
     * called while stopping. */
    int64_t (*upkeep)(void *ctx, nx_db_t *db, nx_arena_t *scratch, int64_t now);
    /* Optional: gives items[0..n) back without an outcome (the dispatcher
     * frees them). With it, stopping releases queued items at once and, at
     * the drain deadline, the running ones too, then leaves. Without it,
     * queued items are written back unattempted, and at the deadline the
     * runners' work is abandoned and they are waited for. */
    void (*release)(void *ctx, nx_db_t *db, nx_arena_t *scratch, void **items, int n);
    /* Abandons the runners' work under way (any thread). */
    void (*abandon)(void *ctx);
    /* Optional: a connection attempt ended (reconnect: an earlier one was
     * lost), taking us. */
    void (*connected)(void *ctx, bool reconnect, bool ok, int64_t us);
    void (*free_item)(void *item);
} nx_db_dispatcher_hooks_t;

/* The pool's settings. Strings are static (log messages, the channel). */
typedef struct nx_db_dispatcher_conf {
    const char *name;             /* "job": the "job workers" */
    const nx_db_target_t *target; /* copied, without the embedded cluster's handle */
    const char *channel;          /* LISTENed on, unless the wake is NX_DB_WAKE_POLL */
    int wake;                     /* enum nx_db_wake */
    int runners;                  /* runner threads */
    int window;                   /* items claimed and not yet written back, at most */
    int batch;                    /* items a claim asks for, at most (0: the free slots) */
    int lease_s;                  /* leases are renewed every third of it */
    int poll_ms;                  /* a claim at least this often */
    int64_t prune_first_us;       /* the first prune, after start */
    int64_t stop_tick_us;         /* stopping: how often the drain is looked at */
    bool claims_first;            /* claimed items go ahead of those still queued */
    const char *claim_failed;     /* logged when a claim fails */
    const char *connect_failed;   /* logged when the connection cannot be opened */
    const char *listen_failed;    /* NX_DB_WAKE_OWN: when its LISTEN cannot be */
} nx_db_dispatcher_conf_t;

/* A process's pool of one kind (the job workers, the webhook senders):
 * static, {.notify_sql = "NOTIFY <channel>"}. The pool itself exists while
 * it runs. Threads that announce work to it are stopped before it is (it is
 * freed then). */
typedef struct nx_db_dispatcher {
    const char *notify_sql;
    _Atomic(struct nx_db_pool *) running;
    _Atomic int64_t last_notify_us; /* NOTIFYs are rate-limited per process */
} nx_db_dispatcher_t;

/* True while disp's pool runs. */
bool nx_db_dispatcher_running(nx_db_dispatcher_t *disp);
/* Starts disp's pool: its runners and its dispatcher. NX_ENOMEM ("could not
 * start the <name> workers", or "... worker threads") with nothing left
 * running. */
int nx_db_dispatcher_start(nx_db_dispatcher_t *disp, const nx_db_dispatcher_conf_t *conf,
                           const nx_db_dispatcher_hooks_t *hooks, void *ctx, nx_err_t *err);
/* Stops disp's pool, if it runs (else false): no new claims; queued items
 * go back at once, running ones get drain_seconds; then the dispatcher
 * leaves, the runners' work is abandoned, the runners are joined and the
 * pool is freed with every item in it. */
bool nx_db_dispatcher_stop(nx_db_dispatcher_t *disp, int drain_seconds);
/* New work was committed in this process: wakes disp's pool, if it runs
 * here, to claim at once, and NOTIFYs the other processes on db, at most
 * once per 25 ms per process (a claim follows 50 ms after every wake, so
 * work committed meanwhile is not left to the poll). */
void nx_db_dispatcher_announce(nx_db_dispatcher_t *disp, nx_db_t *db, nx_arena_t *arena);
/* One batch of a retention DELETE (nx_queue_prune and its like). */
typedef int nx_db_prune_cb(nx_db_t *db, nx_arena_t *scratch, int age, int limit, long *deleted,
                           nx_err_t *err);
/* Runs one batch of prune (at most NX_DB_PRUNE_BATCH rows older than age)
 * and logs it: "pruned <what>" with the count and age as age_name, or
 * "could not prune <what>". Returns the rows deleted, -1 on an error. */
long nx_db_dispatcher_prune(nx_db_t *db, nx_arena_t *scratch, nx_db_prune_cb *prune, int age,
                            const char *what, const char *age_name);
/* A lease owner for a pool: "host:pid:random", valid UTF-8 (stored as text). */
void nx_db_dispatcher_owner_id(char *out, size_t size);

#endif
