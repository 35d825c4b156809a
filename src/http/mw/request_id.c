/*
 * request_id.c - the X-Request-ID of every request.
 *
 * A client (or a proxy in front) may send its own id so logs correlate across
 * systems; we keep it only when it is sane: 1 to 128 visible ASCII characters
 * (0x21-0x7e), so it cannot split a header or a log line. Anything else is
 * replaced by a fresh UUID v4. The id is echoed on every response and written
 * into every problem body and log line of the request.
 */
#include "core/nx.h"
#include "http/http_int.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/util.h"

bool nx_mw_request_id_sane(const char *s)
{
    if (!s || !*s)
        return false;
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
        if (*p < 0x21 || *p > 0x7e || n >= NX_REQUEST_ID_MAX)
            return false;
    return true;
}

const char *nx_mw_request_id(nx_arena_t *arena, const char *client_id)
{
    if (nx_mw_request_id_sane(client_id))
        return nx_arena_strdup(arena, client_id);
    char *id = nx_arena_alloc(arena, NX_UUID_LEN + 1);
    if (id)
        nx_uuid_v4(id);
    return id;
}

int nx_http_stage_request_id(nx_req_t *req, nx_err_t *err)
{
    req->request_id = nx_mw_request_id(req->arena, nx_req_header(req, "X-Request-ID"));
    return req->request_id ? NX_OK : nx_err_set(err, NX_ENOMEM, NULL);
}
