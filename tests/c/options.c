/*
 * options.c: bankid_start_with's options struct from C, as an integrator uses it.
 *
 *   options LIBBANKID_SO CONFIG_FILE
 *
 * Checks the defaults of bankid_start_options_init, that a struct from the older header (up to
 * caller_id, in a heap block of exactly that size, so ASan sees any read past it) is accepted,
 * a signing whose approved text comes back, the ID-document check reported by bankid_step_up,
 * and that a bad enum value is BANKID_INVALID_ARGUMENT. Exits 0 only when all of it holds;
 * prints FAIL lines otherwise. Run plainly and under ASan/UBSan by tests/c_example.rs.
 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stddef.h>
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

static struct {
    bankid_status (*init)(const char *);
    bankid_status (*shutdown)(void);
    bankid_status (*options_init)(bankid_start_options *);
    bankid_status (*start_with)(const bankid_start_options *, bankid_order *);
    bankid_status (*poll)(bankid_order, uint32_t *);
    bankid_status (*step_up)(bankid_order, uint32_t *);
    bankid_status (*signed_text)(bankid_order, char *, size_t, size_t *);
    bankid_status (*release)(bankid_order);
    bankid_status (*last_error)(char *, size_t, size_t *);
} api;

/* The first version of the struct, as a program built against the older header has it. */
typedef struct {
    uint32_t struct_size;
    uint32_t call_initiator;
    const char *personal_number;
    const char *caller_id;
} options_v1;

static const char *last_error(void) {
    static char buf[512];
    size_t n = 0;
    buf[0] = '\0';
    api.last_error(buf, sizeof buf, &n);
    return buf;
}

static uint32_t wait_final(bankid_order order) {
    struct timespec tick = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 1500; i++) {
        uint32_t state = 0;
        if (api.poll(order, &state) != BANKID_OK) return 0;
        if (state != BANKID_STATE_PENDING) return state;
        nanosleep(&tick, NULL);
    }
    return BANKID_STATE_PENDING;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s LIBBANKID_SO CONFIG_FILE\n", argv[0]);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "FAIL: dlopen: %s\n", dlerror());
        return 1;
    }
#define LOAD(field, name)                                                     \
    do {                                                                      \
        *(void **)(&api.field) = dlsym(lib, name);                            \
        if (!api.field) {                                                     \
            fprintf(stderr, "FAIL: %s not exported\n", name);                 \
            return 1;                                                         \
        }                                                                     \
    } while (0)
    LOAD(init, "bankid_init");
    LOAD(shutdown, "bankid_shutdown");
    LOAD(options_init, "bankid_start_options_init");
    LOAD(start_with, "bankid_start_with");
    LOAD(poll, "bankid_poll");
    LOAD(step_up, "bankid_step_up");
    LOAD(signed_text, "bankid_signed_text");
    LOAD(release, "bankid_release");
    LOAD(last_error, "bankid_last_error");
#undef LOAD
    if (api.init(argv[2]) != BANKID_OK) {
        fprintf(stderr, "FAIL: init: %s\n", last_error());
        return 1;
    }
    const char *anna = "198503121116";
    bankid_order order = 0;
    bankid_status st;

    /* Defaults. */
    bankid_start_options o;
    memset(&o, 0xAB, sizeof o);
    CHECK(api.options_init(&o) == BANKID_OK, "options_init");
    CHECK(o.struct_size == sizeof o, "struct_size %u", (unsigned)o.struct_size);
    CHECK(o.mode == BANKID_MODE_IDENTIFY, "mode %u", (unsigned)o.mode);
    CHECK(o.user_visible_data == NULL && o.user_non_visible_data == NULL, "NULL texts");
    CHECK(o.user_visible_data_format == BANKID_TEXT_FORMAT_PLAIN, "plain");
    CHECK(o.require_pin_code == 0 && o.require_id_document == 0, "no requirement");
    CHECK(o.call_id == NULL && o.channel == BANKID_CHANNEL_C_ABI, "no call id, channel C ABI");

    /* A struct of the first version, in a block of exactly its size. */
    CHECK(sizeof(options_v1) == offsetof(bankid_start_options, caller_id) + sizeof(const char *),
          "the first version ends after caller_id");
    options_v1 *old = malloc(sizeof *old);
    if (!old) return 1;
    old->struct_size = (uint32_t)sizeof *old;
    old->call_initiator = BANKID_CALL_INITIATOR_DEFAULT;
    old->personal_number = anna;
    old->caller_id = NULL;
    st = api.start_with((const bankid_start_options *)(const void *)old, &order);
    free(old);
    CHECK(st == BANKID_OK, "old-size struct: %d %s", (int)st, last_error());
    if (st == BANKID_OK) {
        CHECK(wait_final(order) == BANKID_STATE_COMPLETE, "old-size struct identifies");
        api.release(order);
    }

    /* Sign: the approved text comes back, and only once the order is final. */
    const char *text = "Godkänn adressändring till Storgatan 1";
    api.options_init(&o);
    o.personal_number = anna;
    o.mode = BANKID_MODE_SIGN;
    o.user_visible_data = text;
    st = api.start_with(&o, &order);
    CHECK(st == BANKID_OK, "sign: %d %s", (int)st, last_error());
    if (st == BANKID_OK) {
        char buf[128];
        size_t len = 0;
        uint32_t state = 0;
        api.poll(order, &state);
        if (state == BANKID_STATE_PENDING)
            CHECK(api.signed_text(order, buf, sizeof buf, &len) == BANKID_NOT_FINISHED,
                  "no signed text while pending");
        CHECK(wait_final(order) == BANKID_STATE_COMPLETE, "sign completes");
        CHECK(api.signed_text(order, NULL, 0, &len) == BANKID_BUFFER_TOO_SMALL && len == strlen(text),
              "size query %zu", len);
        CHECK(api.signed_text(order, buf, sizeof buf, &len) == BANKID_OK && strcmp(buf, text) == 0,
              "signed text '%s'", buf);
        api.release(order);
    }

    /* The ID-document check. */
    api.options_init(&o);
    o.personal_number = anna;
    o.require_id_document = 1;
    st = api.start_with(&o, &order);
    CHECK(st == BANKID_OK, "iddoc: %d %s", (int)st, last_error());
    if (st == BANKID_OK) {
        uint32_t mrtd = 0;
        CHECK(wait_final(order) == BANKID_STATE_COMPLETE, "iddoc completes");
        CHECK(api.step_up(order, &mrtd) == BANKID_OK && mrtd == 1, "stepUp.mrtd %u", (unsigned)mrtd);
        api.release(order);
    }

    /* Bad values are refused before anything is sent. */
    api.options_init(&o);
    o.personal_number = anna;
    o.mode = 7;
    order = 0;
    CHECK(api.start_with(&o, &order) == BANKID_INVALID_ARGUMENT && order == 0, "mode 7");
    CHECK(strstr(last_error(), "mode") != NULL, "last error names the field: %s", last_error());
    o.mode = BANKID_MODE_SIGN;
    CHECK(api.start_with(&o, &order) == BANKID_INVALID_ARGUMENT, "sign without a text");
    o.mode = BANKID_MODE_IDENTIFY;
    o.user_visible_data_format = 2;
    CHECK(api.start_with(&o, &order) == BANKID_INVALID_ARGUMENT, "format 2");

    api.shutdown();
    dlclose(lib);
    if (failures) return 1;
    printf("options: all checks passed\n");
    return 0;
}
