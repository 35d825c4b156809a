/*
 * fuzz_settings.c - the settings parser (config/settings.c): the input is
 * written as ./.env in an empty directory of an empty environment and
 * loaded, so the .env reader (quotes, comments, export, blanks) and every
 * setting's validation run on it. A load either succeeds, and its dump
 * prints every setting, or fails with one line naming a setting.
 */
#include "core/nx.h"
#include "fuzz.h"
#include "config/settings.h"
#include "core/err.h"

#include <fcntl.h>
#include <unistd.h>

static int home = -1, scratch = -1; /* the fuzzer's directory, and ours */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char dir[] = "/tmp/nx-fuzz-settings-XXXXXX";
    nx_fuzz_quiet();
    home = open(".", O_RDONLY | O_DIRECTORY);
    if (home < 0 || !mkdtemp(dir) || (scratch = open(dir, O_RDONLY | O_DIRECTORY)) < 0)
        abort();
    clearenv(); /* only .env speaks */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fchdir(scratch) != 0) /* .env is read from the working directory */
        abort();
    int fd = open(".env", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size || close(fd) != 0)
        abort();
    nx_settings_t s;
    nx_err_t err = {0};
    if (nx_settings_load(&s, &err) == NX_OK) {
        int null = open("/dev/null", O_WRONLY);
        nx_settings_dump(&s, null);
        close(null);
        nx_settings_release(&s);
    } else if (!err.detail[0] || strchr(err.detail, '\n')) {
        abort();
    }
    if (fchdir(home) != 0)
        abort();
    return 0;
}
