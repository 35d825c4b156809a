/*
 * conn.h - the libmicrohttpd callbacks (conn.c) that server.c installs, and
 * the count of requests in flight it waits on while draining. Private to
 * src/http/.
 */
#ifndef NX_HTTP_CONN_H
#define NX_HTTP_CONN_H

#include "core/nx.h"

#include <microhttpd.h>
#include <stdatomic.h>

enum MHD_Result nx_http_on_request(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version,
                                   const char *upload, size_t *upload_size, void **con_cls);
void nx_http_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                          enum MHD_RequestTerminationCode toe);

extern atomic_int nx_http_inflight_count; /* requests started, not completed */

#endif
