/* A tiny test harness shared by the C clients: CHECK counts failures and says where. */
#ifndef OTA_TEST_CHECK_H
#define OTA_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ota.h"

static int check_failures = 0;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            check_failures++;                                                    \
        }                                                                        \
    } while (0)

/* CHECK_STATUS(call, expected): the call returns the expected status; on a mismatch the
 * last error message is printed. */
#define CHECK_STATUS(call, expected)                                               \
    do {                                                                           \
        ota_status got_ = (call);                                                  \
        if (got_ != (expected)) {                                                  \
            char msg_[1024];                                                       \
            size_t n_ = 0;                                                         \
            msg_[0] = 0;                                                           \
            ota_last_error_message(msg_, sizeof msg_, &n_);                        \
            fprintf(stderr, "%s:%d: %s returned %s (%u), expected %s: %s\n", __FILE__, \
                    __LINE__, #call, ota_status_name(got_), (unsigned)got_,        \
                    ota_status_name(expected), msg_);                              \
            check_failures++;                                                      \
        }                                                                          \
    } while (0)

/* The last error message, in a static buffer. */
static const char *last_error(void) {
    static char buf[4096];
    size_t n = 0;
    buf[0] = 0;
    if (ota_last_error_message(buf, sizeof buf, &n) != OTA_STATUS_OK) {
        return "<could not read the last error>";
    }
    return buf;
}

/* Reads a whole file into a malloc'd buffer; *len receives its size. */
static unsigned char *read_file(const char *dir, const char *name, size_t *len) {
    char path[4096];
    FILE *f;
    long size;
    unsigned char *data;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)size + 1);
    if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    data[size] = 0;
    *len = (size_t)size;
    return data;
}

/* Reads a whole text file (JSON, PEM, hex) into a malloc'd, NUL-terminated buffer; *len
   receives its size. */
static inline char *read_text(const char *dir, const char *name, size_t *len) {
    return (char *)read_file(dir, name, len);
}

static int check_summary(const char *name) {
    if (check_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

#endif
