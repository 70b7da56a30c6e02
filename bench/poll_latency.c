/*
 * poll_latency.c: how long bankid_poll takes from C with N live orders.
 *
 *   poll_latency LIBBANKID_SO CONFIG_TOML N_ORDERS N_POLLS
 *
 * Starts N orders for distinct valid personal numbers (the simulator keeps them pending), then
 * calls bankid_poll on random live handles N_POLLS times, timing each call with
 * CLOCK_MONOTONIC, and prints one line: orders, polls, median and p99 in nanoseconds, and the
 * clock's own overhead measured the same way (subtract it to get the call alone).
 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bankid.h"

static bankid_status (*init_fn)(const char *);
static bankid_status (*start_fn)(const char *, uint32_t, bankid_order *);
static bankid_status (*poll_fn)(bankid_order, uint32_t *);
static bankid_status (*shutdown_fn)(void);

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* The i-th valid personal number born 1970-01-01 … with serials from 000. */
static void personal_number(int i, char out[13]) {
    int day = 1 + (i / 1000) % 28, month = 1 + (i / 28000) % 12, serial = i % 1000;
    snprintf(out, 13, "1970%02d%02d%03d", month, day, serial);
    int sum = 0;
    for (int k = 2; k < 11; k++) {
        int d = (out[k] - '0') * ((k - 2) % 2 == 0 ? 2 : 1);
        sum += d / 10 + d % 10;
    }
    out[11] = (char)('0' + (10 - sum % 10) % 10);
    out[12] = '\0';
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s LIBBANKID_SO CONFIG_TOML N_ORDERS N_POLLS\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[3]), polls = atoi(argv[4]);
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    *(void **)&init_fn = dlsym(lib, "bankid_init");
    *(void **)&start_fn = dlsym(lib, "bankid_start");
    *(void **)&poll_fn = dlsym(lib, "bankid_poll");
    *(void **)&shutdown_fn = dlsym(lib, "bankid_shutdown");
    if (init_fn(argv[2]) != BANKID_OK) {
        fprintf(stderr, "bankid_init failed\n");
        return 1;
    }
    bankid_order *orders = calloc((size_t)n, sizeof *orders);
    long long *samples = calloc((size_t)polls, sizeof *samples);
    long long *clock_samples = calloc((size_t)polls, sizeof *clock_samples);
    if (!orders || !samples || !clock_samples) return 1;
    for (int i = 0; i < n; i++) {
        char pnr[13];
        personal_number(i, pnr);
        if (start_fn(pnr, BANKID_CALL_INITIATOR_USER, &orders[i]) != BANKID_OK) {
            fprintf(stderr, "bankid_start %d failed\n", i);
            return 1;
        }
    }
    unsigned seed = 12345;
    uint32_t state;
    int pending = 0;
    for (int i = 0; i < polls; i++) {
        seed = seed * 1103515245u + 12345u;
        bankid_order o = orders[(seed >> 8) % (unsigned)n];
        long long t0 = now_ns();
        bankid_status st = poll_fn(o, &state);
        long long t1 = now_ns();
        if (st != BANKID_OK) {
            fprintf(stderr, "bankid_poll failed: %u\n", st);
            return 1;
        }
        pending += state == BANKID_STATE_PENDING;
        samples[i] = t1 - t0;
        long long c0 = now_ns();
        long long c1 = now_ns();
        clock_samples[i] = c1 - c0;
    }
    qsort(samples, (size_t)polls, sizeof *samples, cmp);
    qsort(clock_samples, (size_t)polls, sizeof *clock_samples, cmp);
    printf("orders=%d polls=%d median_ns=%lld p99_ns=%lld clock_median_ns=%lld clock_p99_ns=%lld "
           "pending_share=%.3f\n",
           n, polls, samples[polls / 2], samples[polls * 99 / 100], clock_samples[polls / 2],
           clock_samples[polls * 99 / 100], (double)pending / polls);
    shutdown_fn();
    free(orders);
    free(samples);
    free(clock_samples);
    return 0;
}
