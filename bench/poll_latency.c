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
#include "bench.h"

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s LIBBANKID_SO CONFIG_TOML N_ORDERS N_POLLS\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[3]), polls = atoi(argv[4]);
    struct bankid_api api = load_bankid(argv[1], argv[2]);
    bankid_order *orders = calloc((size_t)n, sizeof *orders);
    long long *samples = calloc((size_t)polls, sizeof *samples);
    long long *clock_samples = calloc((size_t)polls, sizeof *clock_samples);
    if (!orders || !samples || !clock_samples) return 1;
    for (int i = 0; i < n; i++) {
        char pnr[13];
        personal_number(i, pnr);
        if (api.start(pnr, BANKID_CALL_INITIATOR_USER, &orders[i]) != BANKID_OK) {
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
        bankid_status st = api.poll(o, &state);
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
    qsort(samples, (size_t)polls, sizeof *samples, cmp_ll);
    qsort(clock_samples, (size_t)polls, sizeof *clock_samples, cmp_ll);
    printf("orders=%d polls=%d median_ns=%lld p99_ns=%lld clock_median_ns=%lld clock_p99_ns=%lld "
           "pending_share=%.3f\n",
           n, polls, samples[polls / 2], samples[polls * 99 / 100], clock_samples[polls / 2],
           clock_samples[polls * 99 / 100], (double)pending / polls);
    api.shutdown();
    free(orders);
    free(samples);
    free(clock_samples);
    return 0;
}
