/*
 * process.c - the standard process_* metrics, read from the kernel at
 * scrape time (/proc/self, getrusage, getrlimit), and nexusapi_build_info.
 * Names and meanings are those of the Prometheus client libraries, so
 * existing dashboards and alerts work unchanged.
 */
#include "core/nx.h"
#include "metrics/metrics_int.h"
#include "core/buf.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Field n (1-based, as proc(5) numbers them) of /proc/self/stat. */
static unsigned long long stat_field(int n)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t len = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[len] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p)
        return 0;
    for (int field = 2; field < n && p; field++)
        p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* Seconds since the epoch at which this process started. */
static double start_time(void)
{
    long long btime = 0;
    char line[256];
    FILE *f = fopen("/proc/stat", "r");
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "btime %lld", &btime) == 1)
            break;
    if (f)
        fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    return (double)btime + (double)stat_field(22) / (double)(hz > 0 ? hz : 100);
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory being read */
}

static int gauge(nx_buf_t *b, const char *name, const char *type, const char *help,
                 double v)
{
    return nx_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type,
                         name, v);
}

int nx_metrics_render_process(nx_buf_t *b)
{
    struct rusage ru;
    struct rlimit rl;
    double cpu = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
              (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    unsigned long long vsize = 0, pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%llu %llu", &vsize, &pages) != 2)
        vsize = pages = 0;
    if (f)
        fclose(f);
    double page = (double)sysconf(_SC_PAGESIZE);
    double max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (double)rl.rlim_cur : 0;
    int rc = gauge(b, "process_cpu_seconds_total", "counter",
                   "Total user and system CPU time spent in seconds.", cpu);
    rc = rc ? rc : gauge(b, "process_resident_memory_bytes", "gauge",
                         "Resident memory size in bytes.", (double)pages * page);
    rc = rc ? rc : gauge(b, "process_virtual_memory_bytes", "gauge",
                         "Virtual memory size in bytes.", (double)vsize * page);
    rc = rc ? rc : gauge(b, "process_open_fds", "gauge", "Number of open file descriptors.",
                         (double)open_fds());
    rc = rc ? rc : gauge(b, "process_max_fds", "gauge",
                         "Maximum number of open file descriptors.", max_fds);
    rc = rc ? rc : gauge(b, "process_start_time_seconds", "gauge",
                         "Start time of the process since unix epoch in seconds.", start_time());
    return rc ? rc : nx_buf_printf(b, "# HELP nexusapi_build_info The version of nexusapi "
                                      "running, as a label; the value is always 1.\n"
                                      "# TYPE nexusapi_build_info gauge\n"
                                      "nexusapi_build_info{version=\"%s\"} 1\n", NX_VERSION);
}
