/*
 * identify.c: identify a caller with BankID from C, the way an IVR custom-block hook does.
 *
 * Loads libbankid.so with dlopen (as an IVR runtime loads a plug-in), initialises it from a
 * configuration file (or BANKID_* environment variables), starts a phone order, polls it while
 * printing each state change and the prompt to play, then prints the agent-visible result text
 * and releases the order.
 *
 *   identify LIBBANKID_SO PERSONAL_NUMBER EXPECTED [CONFIG_FILE]
 *
 * EXPECTED is complete, failed, error or invalid (the number must be refused locally). The
 * program exits 0 only when the order ends that way and every API convention checked on the
 * way holds; it prints FAIL and exits 1 otherwise. Build:
 *
 *   cc -std=c11 -Wall -Wextra -Werror -Iinclude examples/identify.c -ldl -o identify
 *
 * Built with -DBANKID_LINKED it calls the library's functions directly instead, linked at build
 * time against an installed libbankid (scripts/install.sh), and takes no LIBBANKID_SO argument:
 *
 *   cc -std=c11 -Wall -Wextra -Werror -DBANKID_LINKED examples/identify.c \
 *      $(pkg-config --cflags --libs bankid) -o identify-linked
 *   identify-linked PERSONAL_NUMBER EXPECTED [CONFIG_FILE]
 */
#define _POSIX_C_SOURCE 200809L
#ifndef BANKID_LINKED
#include <dlfcn.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bankid.h"

/* The library's functions: looked up with dlsym, or (BANKID_LINKED) the linked ones. */
static struct {
    bankid_status (*init)(const char *);
    bankid_status (*shutdown)(void);
    bankid_status (*start)(const char *, uint32_t, bankid_order *);
    bankid_status (*poll)(bankid_order, uint32_t *);
    bankid_status (*result_text)(bankid_order, char *, size_t, size_t *);
    bankid_status (*message)(bankid_order, uint32_t, char *, size_t, size_t *);
    bankid_status (*hint_code)(bankid_order, char *, size_t, size_t *);
    bankid_status (*release)(bankid_order);
    bankid_status (*last_error)(char *, size_t, size_t *);
    bankid_status (*metrics)(char *, size_t, size_t *);
    const char *(*status_str)(uint32_t);
    const char *(*version)(void);
} api;

static int failures = 0;

#define CHECK(cond, ...)                                        \
    do {                                                        \
        if (!(cond)) {                                          \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                       \
            fputc('\n', stderr);                                \
            failures++;                                         \
        }                                                       \
    } while (0)

#ifdef BANKID_LINKED
/* Arguments before PERSONAL_NUMBER: none, the dynamic linker found the library. */
#define LIB_ARGS 0
static void load(void) {
    api.init = bankid_init;
    api.shutdown = bankid_shutdown;
    api.start = bankid_start;
    api.poll = bankid_poll;
    api.result_text = bankid_result_text;
    api.message = bankid_message;
    api.hint_code = bankid_hint_code;
    api.release = bankid_release;
    api.last_error = bankid_last_error;
    api.metrics = bankid_metrics;
    api.status_str = bankid_status_str;
    api.version = bankid_version;
}
#else
/* Arguments before PERSONAL_NUMBER: LIBBANKID_SO. */
#define LIB_ARGS 1
static void *sym(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "FAIL: %s not exported: %s\n", name, dlerror());
        exit(1);
    }
    return p;
}

static void load(const char *path) {
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "FAIL: dlopen %s: %s\n", path, dlerror());
        exit(1);
    }
    /* POSIX guarantees object and function pointers convert through void*. */
    *(void **)&api.init = sym(lib, "bankid_init");
    *(void **)&api.shutdown = sym(lib, "bankid_shutdown");
    *(void **)&api.start = sym(lib, "bankid_start");
    *(void **)&api.poll = sym(lib, "bankid_poll");
    *(void **)&api.result_text = sym(lib, "bankid_result_text");
    *(void **)&api.message = sym(lib, "bankid_message");
    *(void **)&api.hint_code = sym(lib, "bankid_hint_code");
    *(void **)&api.release = sym(lib, "bankid_release");
    *(void **)&api.last_error = sym(lib, "bankid_last_error");
    *(void **)&api.metrics = sym(lib, "bankid_metrics");
    *(void **)&api.status_str = sym(lib, "bankid_status_str");
    *(void **)&api.version = sym(lib, "bankid_version");
}
#endif

static const char *last_error(void) {
    static char buf[512];
    size_t len = 0;
    api.last_error(buf, sizeof buf, &len);
    return buf;
}

static const char *state_name(uint32_t s) {
    switch (s) {
    case BANKID_STATE_PENDING: return "pending";
    case BANKID_STATE_COMPLETE: return "complete";
    case BANKID_STATE_FAILED: return "failed";
    case BANKID_STATE_ERROR: return "error";
    default: return "?";
    }
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Checks the conventions that hold without a running order. */
static void check_conventions(void) {
    char version[32];
    snprintf(version, sizeof version, "%d.%d.%d", BANKID_VERSION_MAJOR, BANKID_VERSION_MINOR,
             BANKID_VERSION_PATCH);
    CHECK(strcmp(api.version(), version) == 0, "bankid_version() %s != header %s", api.version(),
          version);
    CHECK(strcmp(api.version(), BANKID_VERSION_STRING) == 0, "version string mismatch");
    CHECK(strcmp(api.status_str(BANKID_STALE_HANDLE), "BANKID_STALE_HANDLE") == 0, "status_str");
    CHECK(strcmp(api.status_str(9999), "BANKID_UNKNOWN_STATUS") == 0, "unknown status_str");

    uint32_t state = 0;
    CHECK(api.poll(0, &state) == BANKID_STALE_HANDLE, "poll(0) must be a stale handle");
    CHECK(api.poll(0x1234567800000001ULL, &state) == BANKID_STALE_HANDLE, "made-up handle");
    CHECK(state == 0, "state_out written on failure");
    CHECK(api.release(0) == BANKID_OK, "release(0) is a no-op");
    bankid_order order = 0;
    CHECK(api.start(NULL, BANKID_CALL_INITIATOR_DEFAULT, &order) == BANKID_NULL_POINTER,
          "start(NULL)");
    CHECK(api.start("199908072391", 7, &order) == BANKID_INVALID_ARGUMENT, "bad call initiator");
    CHECK(api.start("199908072391", 0, NULL) == BANKID_NULL_POINTER, "start(order_out NULL)");
    CHECK(api.start("19990807239X", 0, &order) == BANKID_INVALID_PERSONAL_NUMBER, "bad number");
    CHECK(strstr(last_error(), "239") == NULL, "last error leaks digits: %s", last_error());
    CHECK(order == 0, "order_out written on failure");
}

int main(int argc, char **argv) {
    if (argc < LIB_ARGS + 3) {
        fprintf(stderr, "usage: %s %sPERSONAL_NUMBER complete|failed|error|invalid "
                        "[CONFIG_FILE]\n", argv[0], LIB_ARGS ? "LIBBANKID_SO " : "");
        return 2;
    }
    const char *number = argv[LIB_ARGS + 1];
    const char *expected = argv[LIB_ARGS + 2];
    const char *config = argc > LIB_ARGS + 3 ? argv[LIB_ARGS + 3] : NULL;
#ifdef BANKID_LINKED
    load();
#else
    load(argv[1]);
#endif

    bankid_status st = api.init(config);
    if (st != BANKID_OK) {
        fprintf(stderr, "FAIL: bankid_init: %s: %s\n", api.status_str(st), last_error());
        return 1;
    }
    CHECK(api.init(config) == BANKID_ALREADY_INITIALIZED, "double init");
    printf("libbankid %s\n", api.version());
    check_conventions();

    bankid_order order = 0;
    st = api.start(number, BANKID_CALL_INITIATOR_USER, &order);
    if (strcmp(expected, "invalid") == 0) {
        CHECK(st == BANKID_INVALID_PERSONAL_NUMBER, "expected the number to be refused, got %s",
              api.status_str(st));
        printf("refused locally: %s\n", last_error());
        api.shutdown();
        return failures ? 1 : 0;
    }
    if (st != BANKID_OK) {
        fprintf(stderr, "FAIL: bankid_start: %s: %s\n", api.status_str(st), last_error());
        return 1;
    }
    CHECK(order != 0, "handle 0 issued");

    /* Result text before the end: not finished. */
    char text[256];
    size_t len = 0;
    CHECK(api.result_text(order, text, sizeof text, &len) == BANKID_NOT_FINISHED,
          "result text while pending");

    uint32_t state = BANKID_STATE_PENDING, last = 0;
    char hint[64] = "", last_hint[64] = "";
    for (int i = 0; i < 3000 && state == BANKID_STATE_PENDING; i++) {
        st = api.poll(order, &state);
        CHECK(st == BANKID_OK, "poll: %s", api.status_str(st));
        api.hint_code(order, hint, sizeof hint, &len);
        if (state != last || strcmp(hint, last_hint) != 0) {
            char msg[512];
            api.message(order, BANKID_LANG_SV, msg, sizeof msg, &len);
            printf("state=%-8s hint=%-22s prompt: %s\n", state_name(state), hint[0] ? hint : "-",
                   msg);
            last = state;
            strcpy(last_hint, hint);
        }
        if (state == BANKID_STATE_PENDING) sleep_ms(5);
    }

    /* Size query, short buffer, then the real read. */
    size_t need = 0;
    CHECK(api.result_text(order, NULL, 0, &need) == BANKID_BUFFER_TOO_SMALL, "size query");
    char tiny[8];
    CHECK(api.result_text(order, tiny, sizeof tiny, &len) == BANKID_BUFFER_TOO_SMALL, "short buf");
    CHECK(len == need && tiny[sizeof tiny - 1] == '\0', "short buffer must be NUL-terminated");
    st = api.result_text(order, text, sizeof text, &len);
    CHECK(st == BANKID_OK && len == need && strlen(text) == len, "result text");
    printf("result: %s\n", text);

    CHECK(strcmp(state_name(state), expected) == 0, "expected %s, got %s", expected,
          state_name(state));
    if (strcmp(expected, "complete") == 0) {
        static const char prefix[] = "Identification successful for social security number ";
        CHECK(strncmp(text, prefix, sizeof prefix - 1) == 0, "success text: %s", text);
    } else {
        CHECK(strcmp(text, "Identification failed") == 0, "failure text: %s", text);
    }

    /* Metrics, as a hook host would serve them: size query, then a buffer with room to grow. */
    size_t mlen = 0;
    CHECK(api.metrics(NULL, 0, &mlen) == BANKID_BUFFER_TOO_SMALL && mlen > 0, "metrics size");
    size_t mcap = mlen + 4096;
    char *mtext = malloc(mcap);
    CHECK(mtext != NULL, "malloc");
    if (mtext) {
        st = api.metrics(mtext, mcap, &mlen);
        CHECK(st == BANKID_OK && strlen(mtext) == mlen, "metrics: %s", api.status_str(st));
        CHECK(strstr(mtext, "bankid_orders_started_total 1") != NULL, "orders started in metrics");
        free(mtext);
    }

    CHECK(api.release(order) == BANKID_OK, "release");
    CHECK(api.release(order) == BANKID_STALE_HANDLE, "double release must be stale");
    CHECK(api.poll(order, &state) == BANKID_STALE_HANDLE, "poll after release must be stale");
    CHECK(api.shutdown() == BANKID_OK, "shutdown");
    CHECK(api.start("199908072391", 0, &order) == BANKID_NOT_INITIALIZED, "start after shutdown");

    if (failures) {
        fprintf(stderr, "FAIL: %d check(s) failed\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
