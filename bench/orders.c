/*
 * orders.c: libbankid.so (loaded with dlopen) under load, three ways.
 *
 *   orders LIB CONFIG concurrent N WINDOW_S WARMUP_S
 *       starts N orders for made-up valid personal numbers (the simulator keeps them pending),
 *       waits WARMUP_S seconds (the phone/auth requests and first collects, with their TLS
 *       handshakes), then lets the library collect them for WINDOW_S seconds; prints threads,
 *       memory and CPU of the start phase and of the steady window separately.
 *   orders LIB CONFIG cost PNR_FILE CONCURRENCY
 *       identifies every personal number in PNR_FILE, CONCURRENCY at a time, as an IVR would
 *       (start, poll every 5 ms, release when final); prints completed, wall and CPU seconds.
 *   orders LIB CONFIG detect PNR_FILE
 *       starts one order per personal number, polls each every millisecond and prints, per
 *       order, the wall-clock millisecond at which bankid_poll first reported it complete.
 *
 * Output is key=value pairs (one line per order for detect) for bench/run.sh to read.
 */
#include "bench.h"

#include <string.h>
#include <sys/resource.h>

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* A "Key:   value kB" line of /proc/self/status, as a number (-1 if absent). */
static long proc_status(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t k = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, k) == 0 && line[k] == ':') {
            v = atol(line + k + 1);
            break;
        }
    }
    fclose(f);
    return v;
}

static char (*read_pnrs(const char *path, int *count))[13] {
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        exit(1);
    }
    int cap = 1024, n = 0;
    char(*v)[13] = malloc((size_t)cap * sizeof *v);
    char line[64];
    while (v && fgets(line, sizeof line, f)) {
        if (strlen(line) < 12) continue;
        if (n == cap) v = realloc(v, (size_t)(cap *= 2) * sizeof *v);
        if (!v) break;
        memcpy(v[n], line, 12);
        v[n++][12] = '\0';
    }
    fclose(f);
    if (!v) exit(1);
    *count = n;
    return v;
}

static void start_or_die(struct bankid_api *api, const char *pnr, bankid_order *out) {
    bankid_status st = api->start(pnr, BANKID_CALL_INITIATOR_USER, out);
    if (st != BANKID_OK) {
        char msg[512];
        size_t n;
        api->last_error(msg, sizeof msg, &n);
        fprintf(stderr, "bankid_start: %s\n", msg);
        exit(1);
    }
}

static int concurrent(struct bankid_api *api, int n, int window_s, int warmup_s) {
    bankid_order *orders = calloc((size_t)n, sizeof *orders);
    if (!orders) return 1;
    long threads_before = proc_status("Threads"), rss_before = proc_status("VmRSS");
    double cpu0 = cpu_seconds();
    long long t0 = now_ns();
    for (int i = 0; i < n; i++) {
        char pnr[13];
        personal_number(i, pnr);
        start_or_die(api, pnr, &orders[i]);
    }
    double start_s = (now_ns() - t0) / 1e9;
    sleep_ms(warmup_s * 1000L);
    long long window_start = wall_ms();
    double cpu1 = cpu_seconds();
    /* Tells the harness the window begins, so it can read the simulator's counters. */
    printf("window=start\n");
    fflush(stdout);
    sleep_ms(window_s * 1000L);
    double cpu2 = cpu_seconds();
    long long window_end = wall_ms();
    int pending = 0;
    for (int i = 0; i < n; i++) {
        uint32_t state = 0;
        api->poll(orders[i], &state);
        pending += state == BANKID_STATE_PENDING;
    }
    printf("orders=%d start_s=%.3f threads_before=%ld threads=%ld rss_before_kb=%ld rss_kb=%ld "
           "hwm_kb=%ld cpu_start_s=%.3f cpu_window_s=%.3f window_start_ms=%lld "
           "window_end_ms=%lld pending=%d\n",
           n, start_s, threads_before, proc_status("Threads"), rss_before, proc_status("VmRSS"),
           proc_status("VmHWM"), cpu1 - cpu0, cpu2 - cpu1, window_start, window_end, pending);
    fflush(stdout);
    /* The harness reads the simulator's counters and closes stdin; then shut down. */
    char line[16];
    while (fgets(line, sizeof line, stdin)) {
    }
    api->shutdown();
    free(orders);
    return 0;
}

static int cost(struct bankid_api *api, const char *file, int concurrency) {
    int n;
    char(*pnrs)[13] = read_pnrs(file, &n);
    bankid_order *slot = calloc((size_t)concurrency, sizeof *slot);
    if (!slot) return 1;
    double cpu0 = cpu_seconds();
    long long t0 = now_ns();
    int next = 0, done = 0, complete = 0, active = 0;
    while (done < n) {
        for (int s = 0; s < concurrency; s++) {
            if (slot[s] == 0 && next < n) {
                start_or_die(api, pnrs[next++], &slot[s]);
                active++;
            }
            if (slot[s] == 0) continue;
            uint32_t state = 0;
            api->poll(slot[s], &state);
            if (state != BANKID_STATE_PENDING) {
                complete += state == BANKID_STATE_COMPLETE;
                api->release(slot[s]);
                slot[s] = 0;
                active--;
                done++;
            }
        }
        if (active > 0) sleep_ms(5);
    }
    double wall = (now_ns() - t0) / 1e9;
    double cpu = cpu_seconds() - cpu0;
    api->shutdown();
    printf("identifications=%d complete=%d wall_s=%.3f cpu_s=%.3f\n", n, complete, wall, cpu);
    free(slot);
    free(pnrs);
    return complete == n ? 0 : 1;
}

static int detect(struct bankid_api *api, const char *file) {
    int n;
    char(*pnrs)[13] = read_pnrs(file, &n);
    bankid_order *orders = calloc((size_t)n, sizeof *orders);
    long long *seen = calloc((size_t)n, sizeof *seen);
    if (!orders || !seen) return 1;
    for (int i = 0; i < n; i++) start_or_die(api, pnrs[i], &orders[i]);
    int left = n;
    while (left > 0) {
        for (int i = 0; i < n; i++) {
            if (seen[i]) continue;
            uint32_t state = 0;
            api->poll(orders[i], &state);
            if (state == BANKID_STATE_PENDING) continue;
            seen[i] = state == BANKID_STATE_COMPLETE ? wall_ms() : -1;
            left--;
        }
        sleep_ms(1);
    }
    for (int i = 0; i < n; i++) printf("pnr6=%.6s seen_ms=%lld\n", pnrs[i] + 2, seen[i]);
    api->shutdown();
    free(orders);
    free(seen);
    free(pnrs);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr,
                "usage: %s LIB CONFIG concurrent N WINDOW_S WARMUP_S | cost PNR_FILE CONCURRENCY "
                "| detect PNR_FILE\n",
                argv[0]);
        return 2;
    }
    struct bankid_api api = load_bankid(argv[1], argv[2]);
    if (strcmp(argv[3], "concurrent") == 0 && argc == 7)
        return concurrent(&api, atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
    if (strcmp(argv[3], "cost") == 0 && argc == 6) return cost(&api, argv[4], atoi(argv[5]));
    if (strcmp(argv[3], "detect") == 0 && argc == 5) return detect(&api, argv[4]);
    fprintf(stderr, "unknown mode or wrong arguments: %s\n", argv[3]);
    return 2;
}
