/*
 * bench.h: what the C benchmarks share: libbankid.so loaded with dlopen, clocks, and valid
 * personal numbers made up by index.
 */
#ifndef BANKID_BENCH_H
#define BANKID_BENCH_H

#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bankid.h"

struct bankid_api {
    bankid_status (*init)(const char *);
    bankid_status (*start)(const char *, uint32_t, bankid_order *);
    bankid_status (*poll)(bankid_order, uint32_t *);
    bankid_status (*release)(bankid_order);
    bankid_status (*last_error)(char *, size_t, size_t *);
    bankid_status (*shutdown)(void);
};

/* Loads the library and calls bankid_init(config); exits with a message on failure. */
static inline struct bankid_api load_bankid(const char *so_path, const char *config) {
    struct bankid_api a;
    void *lib = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        exit(1);
    }
    *(void **)&a.init = dlsym(lib, "bankid_init");
    *(void **)&a.start = dlsym(lib, "bankid_start");
    *(void **)&a.poll = dlsym(lib, "bankid_poll");
    *(void **)&a.release = dlsym(lib, "bankid_release");
    *(void **)&a.last_error = dlsym(lib, "bankid_last_error");
    *(void **)&a.shutdown = dlsym(lib, "bankid_shutdown");
    if (!a.init || !a.start || !a.poll || !a.release || !a.last_error || !a.shutdown) {
        fprintf(stderr, "%s: a bankid_* symbol is missing\n", so_path);
        exit(1);
    }
    if (a.init(config) != BANKID_OK) {
        char msg[512];
        size_t n;
        a.last_error(msg, sizeof msg, &n);
        fprintf(stderr, "bankid_init: %s\n", msg);
        exit(1);
    }
    return a;
}

static inline long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline long long wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* The i-th valid personal number born 1970-01-01 … with serials from 000. */
static inline void personal_number(int i, char out[13]) {
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

#endif
