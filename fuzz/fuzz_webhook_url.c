/*
 * fuzz_webhook_url.c - the webhook URL checker (webhooks/egress.c): what an
 * admin sends as an endpoint's url. Whatever it is, the answer is OK only
 * for an http(s) URL within NX_WEBHOOK_URL_MAX bytes, and otherwise a
 * validation error with a reason; the address classifier reads any 4 or 16
 * bytes.
 */
#include "core/nx.h"
#include "fuzz.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/err.h"
#include "webhooks/webhooks.h"

#include <strings.h>
#include <sys/socket.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    nx_fuzz_quiet();
    nx_settings_t s;
    memset(&s, 0, sizeof(s));
    s.webhook_allow_http = true;
    static char host[] = "127.0.0.1";
    s.host = host;
    nx_err_t err = {0};
    if (nx_webhooks_egress_init(&s, 8000, &err) != NX_OK)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = nx_fuzz_str(data, size);
    nx_arena_t *a = nx_arena_new(4096);
    const char *why = NULL;
    int rc = nx_webhook_url_check(a, url, false, &why);
    if (rc == NX_OK && (strlen(url) > NX_WEBHOOK_URL_MAX ||
                        (strncasecmp(url, "https://", 8) != 0 && strncasecmp(url, "http://", 7) != 0)))
        abort();
    if (rc != NX_OK && rc != NX_ENOMEM && (rc != NX_EVALIDATION || !why || !*why))
        abort();
    if (size >= 16) {
        (void)nx_webhook_addr_class(AF_INET, data);
        (void)nx_webhook_addr_class(AF_INET6, data);
    }
    nx_arena_free(a);
    free(url);
    return 0;
}
