/*
 * reload.c: a host that loads, uses and unloads libbankid.so again and again, as an IVR does
 * when its plug-in is reloaded.
 *
 *   reload LIBBANKID_SO CONFIG_FILE ROUNDS
 *
 * First, in one load: init -> start -> shutdown -> init -> start must give a new handle, and the
 * old one must be BANKID_STALE_HANDLE in the new engine. Then ROUNDS times: dlopen -> init ->
 * identify a test person -> shutdown -> dlclose, checking after each shutdown that every thread
 * the library started has ended (so dlclose cannot pull code from under a running thread).
 * Exits 0 only when all of it holds; prints FAIL lines otherwise. Run plainly, under ASan and
 * under valgrind by tests/c_example.rs.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bankid.h"

static int failures = 0;

#define CHECK(cond, ...)                                         \
    do {                                                         \
        if (!(cond)) {                                           \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                        \
            fputc('\n', stderr);                                 \
            failures++;                                          \
        }                                                        \
    } while (0)

typedef struct {
    void *lib;
    bankid_status (*init)(const char *);
    bankid_status (*shutdown)(void);
    bankid_status (*start)(const char *, uint32_t, bankid_order *);
    bankid_status (*poll)(bankid_order, uint32_t *);
    bankid_status (*result_text)(bankid_order, char *, size_t, size_t *);
    bankid_status (*release)(bankid_order);
    bankid_status (*last_error)(char *, size_t, size_t *);
} api_t;

static void *sym(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "FAIL: %s not exported: %s\n", name, dlerror());
        exit(1);
    }
    return p;
}

static api_t load(const char *path) {
    api_t a;
    a.lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!a.lib) {
        fprintf(stderr, "FAIL: dlopen %s: %s\n", path, dlerror());
        exit(1);
    }
    /* POSIX lets dlsym's void * become a function pointer; ISO C does not say so. */
#define LOAD(field, name) *(void **)(&a.field) = sym(a.lib, name)
    LOAD(init, "bankid_init");
    LOAD(shutdown, "bankid_shutdown");
    LOAD(start, "bankid_start");
    LOAD(poll, "bankid_poll");
    LOAD(result_text, "bankid_result_text");
    LOAD(release, "bankid_release");
    LOAD(last_error, "bankid_last_error");
#undef LOAD
    return a;
}

static const char *last_error(const api_t *a) {
    static char buf[512];
    size_t n = 0;
    buf[0] = '\0';
    a->last_error(buf, sizeof buf, &n);
    return buf;
}

/* Threads of this process, from /proc/self/task. */
static int threads(void) {
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    struct dirent *e;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* The names of this process's threads, for a failure message ("main bankid-audit ..."). */
static const char *thread_names(void) {
    static char names[1024];
    size_t used = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    names[0] = '\0';
    if (!d) return names;
    while ((e = readdir(d)) != NULL) {
        char path[300], comm[64];
        FILE *f;
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        f = fopen(path, "r");
        if (!f) continue;
        if (fgets(comm, sizeof comm, f)) {
            comm[strcspn(comm, "\n")] = '\0';
            used += (size_t)snprintf(names + used, used < sizeof names ? sizeof names - used : 0,
                                     "%s%s", used ? " " : "", comm);
            if (used >= sizeof names) used = sizeof names - 1;
        }
        fclose(f);
    }
    closedir(d);
    return names;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls until final (at most 30 s); returns the bankid_state. */
static uint32_t wait_final(const api_t *a, bankid_order order) {
    uint32_t state = BANKID_STATE_PENDING;
    for (int i = 0; i < 3000 && state == BANKID_STATE_PENDING; i++) {
        CHECK(a->poll(order, &state) == BANKID_OK, "poll: %s", last_error(a));
        if (state == BANKID_STATE_PENDING) sleep_ms(10);
    }
    return state;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: reload LIBBANKID_SO CONFIG_FILE ROUNDS\n");
        return 2;
    }
    const char *path = argv[1], *config = argv[2];
    int rounds = atoi(argv[3]);
    int threads_before = threads();

    /* 1. Handles survive no reload: the old one is stale, the new one is new. */
    api_t a = load(path);
    bankid_order first = 0, second = 0;
    uint32_t state = 0;
    CHECK(a.init(config) == BANKID_OK, "init: %s", last_error(&a));
    CHECK(a.start("198503121116", BANKID_CALL_INITIATOR_USER, &first) == BANKID_OK,
          "start: %s", last_error(&a));
    CHECK(a.shutdown() == BANKID_OK, "shutdown");
    CHECK(a.poll(first, &state) == BANKID_NOT_INITIALIZED, "poll after shutdown");
    CHECK(a.init(config) == BANKID_OK, "init again: %s", last_error(&a));
    CHECK(a.start("198503121116", BANKID_CALL_INITIATOR_USER, &second) == BANKID_OK,
          "start again: %s", last_error(&a));
    CHECK(second != first, "the first handle of a new engine repeats the old one: %llu",
          (unsigned long long)second);
    CHECK(a.poll(first, &state) == BANKID_STALE_HANDLE,
          "an old handle must be stale in the new engine");
    CHECK(a.release(first) == BANKID_STALE_HANDLE, "releasing an old handle");
    CHECK(wait_final(&a, second) == BANKID_STATE_COMPLETE, "second order did not complete");
    CHECK(a.release(second) == BANKID_OK, "release");
    CHECK(a.shutdown() == BANKID_OK, "shutdown");
    CHECK(threads() == threads_before, "threads left after shutdown: %d (%s), before init: %d",
          threads(), thread_names(), threads_before);
    CHECK(dlclose(a.lib) == 0, "dlclose: %s", dlerror());

    /* 2. Load, identify, shut down, unload — again and again. */
    for (int r = 0; r < rounds; r++) {
        api_t b = load(path);
        bankid_order order = 0;
        char text[256];
        size_t n = 0;
        CHECK(b.init(config) == BANKID_OK, "round %d: init: %s", r, last_error(&b));
        CHECK(b.start("198503121116", BANKID_CALL_INITIATOR_USER, &order) == BANKID_OK,
              "round %d: start: %s", r, last_error(&b));
        CHECK(wait_final(&b, order) == BANKID_STATE_COMPLETE, "round %d: not complete", r);
        CHECK(b.result_text(order, text, sizeof text, &n) == BANKID_OK, "round %d: text", r);
        CHECK(strcmp(text, "Identification successful for social security number 850312-1116") == 0,
              "round %d: %s", r, text);
        /* Left unreleased on purpose: shutdown frees what the host forgot. */
        CHECK(b.shutdown() == BANKID_OK, "round %d: shutdown", r);
        CHECK(threads() == threads_before,
              "round %d: %d threads left after shutdown (%s), %d before", r, threads(),
              thread_names(), threads_before);
        CHECK(dlclose(b.lib) == 0, "round %d: dlclose: %s", r, dlerror());
        if (failures) break;
    }
    if (failures) {
        fprintf(stderr, "FAIL: %d check(s) failed\n", failures);
        return 1;
    }
    printf("ok: reinit gives new handles; %d load/identify/shutdown/unload rounds, no thread left\n",
           rounds);
    return 0;
}
