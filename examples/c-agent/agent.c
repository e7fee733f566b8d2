/*
 * ota-c-agent: a firmware update agent in C that talks to the ota control plane over HTTP.
 *
 * This is the example a firmware developer copies. It drives the library's update agent
 * (include/ota.h, libota) and does the I/O the library leaves to its host:
 *
 *   - HTTP, with libcurl: poll `GET /api/v1/devices/{id}/ota` for an assignment, fetch the
 *     chunks the agent asks for with `GET /api/v1/devices/{id}/ota/chunk?package_id=&offset=
 *     &length=` in shuffled order, and send the agent's reports, with progress steps, to
 *     `POST /api/v1/devices/{id}/ota/report`. Every request carries the device's credential
 *     as a bearer token.
 *   - storage, as files in a state directory:
 *         record.json     the agent's record: written to a hidden temporary file, fsync'ed,
 *                         renamed over the old one (and the directory fsync'ed) before the
 *                         step it guards, so a power cut at any point resumes from it;
 *         staging.bin     verified chunks at their offsets, re-verified after a restart;
 *         slot-a, slot-b  the two slots (A/B files): the new version is written into the
 *                         inactive one;
 *         current         a symlink to the active slot, switched atomically (rename);
 *         installing      a symlink to the slot the current update writes, so that a swap
 *                         and a restore repeated after a restart do the same thing again.
 *   - the health probe, run for real by the library (`ota_probe_run`) with the config's
 *     `exec_allowlist`.
 *
 * The library decides everything else: whether the assignment's signature verifies, whether
 * it fits this device, whether a chunk is good, when to persist, swap, probe, roll back and
 * report. The host carries out the agent's commands in the order `ota_agent_poll` gives them.
 *
 * Usage: see usage() below, and README.md. Exit status (sysexits-style):
 *   0  the cycle ended well: no update was assigned, or the update was installed, proved
 *      healthy and reported;
 *   3  the update failed (refused, or rolled back after a failed probe) and was reported;
 *   64 bad arguments or configuration;
 *   74 local storage failed;
 *   75 the server could not be reached, or kept failing: try again later (the record keeps
 *      the progress);
 *   77 the server refused a request (the message says which and why).
 */
#define _DEFAULT_SOURCE /* fsync, mkstemp, symlink, readlink, nanosleep, strncasecmp */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ota.h"

enum {
    EXIT_DONE = 0,
    EXIT_UPDATE_FAILED = 3,
    EXIT_USAGE = 64,
    EXIT_STORAGE = 74,
    EXIT_RETRY = 75,
    EXIT_DENIED = 77,
};

/* The largest JSON answer the agent accepts from the server (an assignment carries the
 * signed statement with its chunk table: about 70 bytes per 64 KiB chunk). */
#define MAX_JSON_ANSWER (8u << 20)
/* The chunk size of the protocol: the agent never asks for more. */
#define MAX_CHUNK 65536u

/* ------------------------------------------------------------------------------------------
 * Settings: the command line.
 * ---------------------------------------------------------------------------------------- */

typedef struct {
    const char *server;          /* base URL, e.g. http://127.0.0.1:8080 */
    const char *device_id;       /* this device's id on the server */
    const char *credential_file; /* the device credential the server issued at registration */
    const char *config_file;     /* the agent's JSON configuration (see README.md) */
    const char *state_dir;       /* where the record, staging and slots live */
    bool once;                   /* one poll-and-update cycle, then exit */
    long poll_ms;                /* between polls, plus up to 10 % jitter */
    long max_cycles;             /* stop after this many cycles (0: never) */
    long timeout_ms;             /* per HTTP request */
    long attempts;               /* tries per HTTP request before giving up the cycle */
    long cycle_ms;               /* the longest a download may run in one cycle */
    uint64_t seed;               /* the shuffle's seed (0: from the clock) */
    const char *chunks_of;       /* test only: fetch another package's chunks */
} settings;

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s --server URL --device ID --credential FILE --config FILE --state DIR\n"
            "          [--once] [--poll-ms N] [--max-cycles N] [--timeout-ms N] [--attempts N]\n"
            "          [--cycle-ms N] [--seed N] [--chunks-of PACKAGE_ID]\n"
            "  --once         one poll-and-update cycle, then exit with its status\n"
            "  --poll-ms      between polls in the loop (default 30000, plus up to 10 %% jitter)\n"
            "  --max-cycles   stop the loop after N cycles (default: never)\n"
            "  --timeout-ms   per HTTP request (default 30000)\n"
            "  --attempts     tries per HTTP request before the cycle gives up (default 5)\n"
            "  --cycle-ms     the longest a download may run in one cycle (default 600000)\n"
            "  --seed         the seed of the chunk shuffle (default: from the clock)\n"
            "  --chunks-of    tests only: ask for another package's chunks (the server must\n"
            "                 refuse with PERMISSION_DENIED)\n",
            argv0);
}

static bool parse_long(const char *s, long min, long *out) {
    char *end = NULL;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min) {
        return false;
    }
    *out = v;
    return true;
}

/* Parses the command line into `s`; false (after saying why) when it is wrong. */
static bool parse_args(int argc, char **argv, settings *s) {
    int i;
    memset(s, 0, sizeof *s);
    s->poll_ms = 30000;
    s->timeout_ms = 30000;
    s->attempts = 5;
    s->cycle_ms = 600000;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n = 0;
        if (strcmp(a, "--once") == 0) {
            s->once = true;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "ota-c-agent: %s: unknown option, or its value is missing\n", a);
            return false;
        }
        i++;
        if (strcmp(a, "--server") == 0) {
            s->server = v;
        } else if (strcmp(a, "--device") == 0) {
            s->device_id = v;
        } else if (strcmp(a, "--credential") == 0) {
            s->credential_file = v;
        } else if (strcmp(a, "--config") == 0) {
            s->config_file = v;
        } else if (strcmp(a, "--state") == 0) {
            s->state_dir = v;
        } else if (strcmp(a, "--chunks-of") == 0) {
            s->chunks_of = v;
        } else if (strcmp(a, "--poll-ms") == 0 && parse_long(v, 0, &n)) {
            s->poll_ms = n;
        } else if (strcmp(a, "--max-cycles") == 0 && parse_long(v, 0, &n)) {
            s->max_cycles = n;
        } else if (strcmp(a, "--timeout-ms") == 0 && parse_long(v, 1, &n)) {
            s->timeout_ms = n;
        } else if (strcmp(a, "--attempts") == 0 && parse_long(v, 1, &n)) {
            s->attempts = n;
        } else if (strcmp(a, "--cycle-ms") == 0 && parse_long(v, 1, &n)) {
            s->cycle_ms = n;
        } else if (strcmp(a, "--seed") == 0 && parse_long(v, 0, &n)) {
            s->seed = (uint64_t)n;
        } else {
            fprintf(stderr, "ota-c-agent: %s: unknown option or bad value %s\n", a, v);
            return false;
        }
    }
    if (!s->server || !s->device_id || !s->credential_file || !s->config_file || !s->state_dir) {
        fprintf(stderr, "ota-c-agent: --server, --device, --credential, --config and --state "
                        "are required\n");
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------------------------
 * Small helpers: time, randomness, files, the library's last error.
 * ---------------------------------------------------------------------------------------- */

/* Wall-clock time in Unix milliseconds: the agent's `now`. */
static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(uint64_t ms) {
    struct timespec ts;
    ts.tv_sec = (time_t)(ms / 1000u);
    ts.tv_nsec = (long)(ms % 1000u) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* xorshift64*: enough to shuffle chunk requests and jitter polls; not for keys. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t next_random(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/* The detail of the library's last failure on this thread, in a static buffer. */
static const char *ota_error(void) {
    static char buf[2048];
    size_t n = 0;
    buf[0] = '\0';
    if (ota_last_error_message(buf, sizeof buf, &n) != OTA_STATUS_OK) {
        snprintf(buf, sizeof buf, "(the message is longer than %zu bytes)", sizeof buf);
    }
    return buf;
}

static const char *status_name(ota_status s) {
    const char *n = ota_status_name((uint32_t)s);
    return n ? n : "unknown";
}

/* Reads a whole file into a malloc'd, NUL-terminated buffer; NULL if it cannot. */
static char *read_file(const char *path, size_t *len_out) {
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t len = 0, cap = 0;
    if (!f) {
        return NULL;
    }
    for (;;) {
        size_t got;
        if (cap - len < 4096) {
            char *bigger = realloc(data, cap ? cap * 2 : 8192);
            if (!bigger) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = bigger;
            cap = cap ? cap * 2 : 8192;
        }
        got = fread(data + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) {
            break;
        }
    }
    if (ferror(f)) {
        free(data);
        fclose(f);
        return NULL;
    }
    fclose(f);
    data[len] = '\0';
    *len_out = len;
    return data;
}

static void join_path(char *out, size_t n, const char *dir, const char *name) {
    snprintf(out, n, "%s/%s", dir, name);
}

/* fsync's a directory, so that a rename in it is durable. */
static bool sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    bool ok;
    if (fd < 0) {
        return false;
    }
    ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

/* Replaces `dir/name` with `data` atomically and durably: write a temporary file, fsync it,
 * rename it over the old one, fsync the directory. A power cut leaves the old or the new
 * file, never a mix. The temporary file has a hidden name of its own (`.NAME.XXXXXX`, made
 * by `mkstemp`: unpredictable, created exclusively, 0600), so a symlink planted beside the
 * file is never followed; on failure it is removed, and what a crash leaves of it is removed
 * at the next start (remove_leftovers). */
static bool write_atomically(const char *dir, const char *name, const char *data, size_t len) {
    char path[4096], tmp[4200], hidden[300];
    int fd;
    size_t done = 0;
    join_path(path, sizeof path, dir, name);
    snprintf(hidden, sizeof hidden, ".%s.XXXXXX", name);
    join_path(tmp, sizeof tmp, dir, hidden);
    fd = mkstemp(tmp);
    if (fd < 0) {
        return false;
    }
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            close(fd);
            unlink(tmp);
            return false;
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0) {
        close(fd);
        unlink(tmp);
        return false;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return false;
    }
    return sync_dir(dir);
}

/* Removes what a crash while replacing `dir/name` left: its hidden temporary files
 * (`.NAME.` and six more characters, write_atomically). Only this process writes there. */
static void remove_leftovers(const char *dir, const char *name) {
    char prefix[300], path[4096];
    size_t n;
    DIR *d = opendir(dir);
    struct dirent *e;
    if (d == NULL) {
        return;
    }
    n = (size_t)snprintf(prefix, sizeof prefix, ".%s.", name);
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, n) == 0 && strlen(e->d_name) == n + 6) {
            join_path(path, sizeof path, dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

/* ------------------------------------------------------------------------------------------
 * A tiny JSON reader: enough to pick a top-level member out of an object the server or the
 * library wrote (no allocation; strings with escapes are not decoded). Real firmware may use
 * its own JSON library instead.
 * ---------------------------------------------------------------------------------------- */

static const char *json_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }
    return p;
}

/* `p` at a '"': returns just past the closing quote, or NULL. */
static const char *json_skip_string(const char *p, const char *end) {
    for (p++; p < end; p++) {
        if (*p == '\\') {
            p++;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

/* Returns just past the value at `p`, or NULL when it is not one. */
static const char *json_skip_value(const char *p, const char *end) {
    int depth = 0;
    p = json_ws(p, end);
    if (p >= end) {
        return NULL;
    }
    if (*p != '{' && *p != '[') {
        if (*p == '"') {
            return json_skip_string(p, end);
        }
        while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' &&
               *p != '\r' && *p != '\t') {
            p++;
        }
        return p;
    }
    for (; p < end; p++) {
        if (*p == '"') {
            p = json_skip_string(p, end);
            if (!p) {
                return NULL;
            }
            p--;
        } else if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            if (--depth == 0) {
                return p + 1;
            }
        }
    }
    return NULL;
}

/* Finds the member `key` of the JSON object in [json, json + len): its value's text. */
static bool json_member(const char *json, size_t len, const char *key, const char **val,
                        size_t *val_len) {
    const char *end = json + len;
    const char *p = json_ws(json, end);
    size_t klen = strlen(key);
    if (p >= end || *p != '{') {
        return false;
    }
    p++;
    for (;;) {
        const char *k, *v, *after;
        p = json_ws(p, end);
        if (p >= end || *p != '"') {
            return false;
        }
        k = p + 1;
        p = json_skip_string(p, end);
        if (!p) {
            return false;
        }
        p = json_ws(p, end);
        if (p >= end || *p != ':') {
            return false;
        }
        v = json_ws(p + 1, end);
        after = json_skip_value(v, end);
        if (!after) {
            return false;
        }
        if ((size_t)(p - k) >= klen + 1 && memcmp(k, key, klen) == 0 && k[klen] == '"' &&
            json_ws(k + klen + 1, end) == p) {
            *val = v;
            *val_len = (size_t)(after - v);
            return true;
        }
        p = json_ws(after, end);
        if (p >= end || *p != ',') {
            return false;
        }
        p++;
    }
}

/* Copies the string member `key` (without escapes: ids, codes, states) into `out`. */
static bool json_string(const char *json, size_t len, const char *key, char *out, size_t n) {
    const char *v;
    size_t vlen;
    if (!json_member(json, len, key, &v, &vlen) || vlen < 2 || v[0] != '"' ||
        v[vlen - 1] != '"' || vlen - 2 >= n || memchr(v, '\\', vlen) != NULL) {
        return false;
    }
    memcpy(out, v + 1, vlen - 2);
    out[vlen - 2] = '\0';
    return true;
}

/* ------------------------------------------------------------------------------------------
 * The device: its settings, its HTTP connection, its storage.
 * ---------------------------------------------------------------------------------------- */

typedef struct {
    const settings *s;
    CURL *curl;                  /* one handle: its connection is kept alive between requests */
    struct curl_slist *headers;  /* the bearer token, JSON, no 100-continue */
    char *device_escaped;        /* the device id, URL-escaped */
    char *config;                /* the agent's configuration (JSON) */
    size_t config_len;
    const char *allowlist;       /* the config's "exec_allowlist" (a JSON array) */
    size_t allowlist_len;
    int staging_fd;              /* staging.bin, open for the life of the process */
    int slot_fd;                 /* the inactive slot while an install writes it, else -1 */
    char *text;                  /* the text of the agent's last command */
    size_t text_cap;
    /* The chunks the agent asked for and the device has not fetched yet. */
    uint64_t *pending_offset;
    uint32_t *pending_length;
    size_t pending_n, pending_cap;
    bool probing_reported;       /* the `probing` step is sent once per update */
} device;

/* --- The slots: `current` and `installing` are symlinks to slot-a or slot-b. --- */

/* Reads which slot a symlink names ("slot-a" or "slot-b"); `fallback` when it is missing. */
static const char *slot_of(const device *d, const char *link, const char *fallback) {
    char path[4096], target[64];
    ssize_t n;
    join_path(path, sizeof path, d->s->state_dir, link);
    n = readlink(path, target, sizeof target - 1);
    if (n <= 0) {
        return fallback;
    }
    target[n] = '\0';
    return strcmp(target, "slot-b") == 0 ? "slot-b" : "slot-a";
}

static const char *other_slot(const char *slot) {
    return strcmp(slot, "slot-a") == 0 ? "slot-b" : "slot-a";
}

/* Points the symlink `link` at `slot` atomically: a new symlink renamed over the old one. */
static bool point(const device *d, const char *link, const char *slot) {
    char path[4096], tmp[4200];
    join_path(path, sizeof path, d->s->state_dir, link);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(tmp);
    if (symlink(slot, tmp) != 0 || rename(tmp, path) != 0) {
        return false;
    }
    return sync_dir(d->s->state_dir);
}

/* --- ota_device_io: the storage callbacks the library calls. Each returns 0 on success. --- */

/* Stores a verified chunk at its offset in staging. No fsync: after a restart the library
 * re-verifies every staged chunk and asks again for any that did not survive. */
static int stage_write(void *ctx, uint64_t offset, const uint8_t *data, size_t len) {
    device *d = ctx;
    size_t done = 0;
    while (done < len) {
        ssize_t w = pwrite(d->staging_fd, data + done, len - done, (off_t)(offset + done));
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return 1;
        }
        done += (size_t)w;
    }
    return 0;
}

static int stage_read(void *ctx, uint64_t offset, uint8_t *buf, size_t len) {
    device *d = ctx;
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(d->staging_fd, buf + done, len - done, (off_t)(offset + done));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return 1;
        }
        done += (size_t)r;
    }
    return 0;
}

/* Empties the inactive slot for a new install, and records which slot this update writes
 * (`installing`) before writing it, so a swap or restore after a restart picks the same. */
static int slot_open(void *ctx) {
    device *d = ctx;
    const char *target = other_slot(slot_of(d, "current", "slot-a"));
    char path[4096];
    if (d->slot_fd >= 0) {
        close(d->slot_fd);
        d->slot_fd = -1;
    }
    if (!point(d, "installing", target)) {
        return 1;
    }
    join_path(path, sizeof path, d->s->state_dir, target);
    d->slot_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    return d->slot_fd >= 0 ? 0 : 1;
}

static int slot_write(void *ctx, const uint8_t *data, size_t len) {
    device *d = ctx;
    size_t done = 0;
    while (done < len) {
        ssize_t w = d->slot_fd >= 0 ? write(d->slot_fd, data + done, len - done) : -1;
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return 1;
        }
        done += (size_t)w;
    }
    return 0;
}

/* Makes the new version durable in its slot before the agent asks for the swap. */
static int slot_flush(void *ctx) {
    device *d = ctx;
    int fd = d->slot_fd;
    d->slot_fd = -1;
    if (fd < 0) {
        return 1;
    }
    if (fsync(fd) != 0) {
        close(fd);
        return 1;
    }
    return close(fd) == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------------------------------
 * HTTP, with libcurl.
 * ---------------------------------------------------------------------------------------- */

typedef struct {
    long status;          /* the HTTP status, 0 when no answer came */
    char *body;           /* the body (NUL-terminated), malloc'd */
    size_t len, cap, max; /* its length, capacity, and the most accepted */
    bool too_long;        /* the body went past `max` (the transfer was stopped) */
    bool json;            /* Content-Type: application/json */
    long long ota_offset; /* the `ota-offset` header, -1 when absent */
    char error[CURL_ERROR_SIZE];
} response;

static void response_reset(response *r, size_t max) {
    r->status = 0;
    r->len = 0;
    r->max = max;
    r->too_long = false;
    r->json = false;
    r->ota_offset = -1;
    r->error[0] = '\0';
    if (r->body) {
        r->body[0] = '\0';
    }
}

static void response_free(response *r) {
    free(r->body);
    r->body = NULL;
    r->cap = 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *userp) {
    response *r = userp;
    size_t len = size * n;
    if (r->len + len > r->max) {
        r->too_long = true;
        return 0; /* stops the transfer: CURLE_WRITE_ERROR */
    }
    if (r->len + len + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        char *bigger;
        while (cap < r->len + len + 1) {
            cap *= 2;
        }
        bigger = realloc(r->body, cap);
        if (!bigger) {
            return 0;
        }
        r->body = bigger;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, len);
    r->len += len;
    r->body[r->len] = '\0';
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *userp) {
    response *r = userp;
    size_t len = size * n;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A new response head (after a 100 Continue, say): forget the previous one's. */
        r->json = false;
        r->ota_offset = -1;
    } else if (len > 13 && strncasecmp(data, "content-type:", 13) == 0) {
        const char *v = data + 13;
        while (v < data + len && *v == ' ') {
            v++;
        }
        r->json = (size_t)(data + len - v) >= 16 && strncasecmp(v, "application/json", 16) == 0;
    } else if (len > 11 && strncasecmp(data, "ota-offset:", 11) == 0) {
        char num[32];
        size_t k = len - 11 < sizeof num - 1 ? len - 11 : sizeof num - 1;
        memcpy(num, data + 11, k);
        num[k] = '\0';
        r->ota_offset = strtoll(num, NULL, 10);
    }
    return len;
}

/* One request. `body` NULL means GET, else POST of JSON. Returns false when no complete
 * answer came (the reason is in r->error). */
static bool http_once(device *d, const char *url, const char *body, size_t body_len,
                      response *r, size_t max) {
    CURLcode rc;
    CURL *c = d->curl;
    response_reset(r, max);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, d->headers);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, d->s->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, d->s->timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->error);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    rc = curl_easy_perform(c);
    /* The handle keeps no pointer into `r` past this call. */
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    if (rc != CURLE_OK) {
        if (r->error[0] == '\0') {
            snprintf(r->error, sizeof r->error, "%s", curl_easy_strerror(rc));
        }
        if (r->too_long) {
            snprintf(r->error, sizeof r->error, "the answer is longer than %zu bytes", max);
        }
        r->status = 0;
        return false;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    return true;
}

/* Whether an answer is worth asking again for: no answer, a server error, or too busy. */
static bool transient(const response *r) {
    return r->status == 0 || r->status >= 500 || r->status == 429;
}

/* Waits before attempt `k` (1, 2, ...): exponential backoff from 100 ms, capped at 2 s, with
 * jitter, so a fleet does not retry in step. */
static void backoff(long k) {
    uint64_t ms = 100u << (k < 5 ? k : 5);
    if (ms > 2000) {
        ms = 2000;
    }
    sleep_ms(ms / 2 + next_random() % (ms / 2 + 1));
}

/* A request tried up to --attempts times while the failure is transient. The last answer is
 * in `r`; true when it is not transient. */
static bool http_call(device *d, const char *url, const char *body, size_t body_len,
                      response *r, size_t max, long attempts) {
    long k;
    for (k = 0; k < attempts; k++) {
        if (k > 0) {
            backoff(k);
        }
        http_once(d, url, body, body_len, r, max);
        if (!transient(r)) {
            return true;
        }
        fprintf(stderr, "ota-c-agent: %s: %s (attempt %ld of %ld)\n", url,
                r->status ? "server error" : r->error, k + 1, attempts);
    }
    return false;
}

/* Says what the server's error answer was: `{"code": "PERMISSION_DENIED", "message": ...}`. */
static void print_refusal(const char *what, const response *r) {
    char code[64] = "?", message[512] = "";
    if (r->body && r->json) {
        json_string(r->body, r->len, "code", code, sizeof code);
        json_string(r->body, r->len, "message", message, sizeof message);
    }
    fprintf(stderr, "ota-c-agent: %s refused: HTTP %ld %s: %s\n", what, r->status, code,
            message);
    printf("refused: %s %s\n", what, code);
}

/* ------------------------------------------------------------------------------------------
 * The control plane's endpoints.
 * ---------------------------------------------------------------------------------------- */

/* Sends a report (the agent's JSON, with a progress `step` added when not NULL).
 * Returns EXIT_DONE when the server has it, EXIT_RETRY when it could not be delivered. */
static int send_report(device *d, const char *report, size_t len, const char *step,
                       long attempts) {
    char url[4096];
    char *body;
    size_t body_len;
    response r = {0};
    int result = EXIT_DONE;
    snprintf(url, sizeof url, "%s/api/v1/devices/%s/ota/report", d->s->server,
             d->device_escaped);
    /* The report is a JSON object: the step goes in before its closing brace. */
    body = malloc(len + 64);
    if (!body) {
        return EXIT_RETRY;
    }
    memcpy(body, report, len);
    body_len = len;
    if (step && len > 0 && report[len - 1] == '}') {
        body_len = len - 1 + (size_t)sprintf(body + len - 1, ",\"step\":\"%s\"}", step);
    }
    if (!http_call(d, url, body, body_len, &r, 1u << 16, attempts)) {
        fprintf(stderr, "ota-c-agent: the report could not be delivered: %s\n",
                r.status ? "server error" : r.error);
        result = EXIT_RETRY;
    } else if (r.status == 409) {
        /* FAILED_PRECONDITION: the server already has the device's final word (an earlier
         * try of this report arrived, but its answer did not). */
        printf("report (the server already had it): %.*s\n", (int)body_len, body);
    } else if (r.status < 200 || r.status >= 300) {
        print_refusal("report", &r);
        result = r.status == 401 || r.status == 403 ? EXIT_DENIED : EXIT_DONE;
    } else {
        printf("report: %.*s\n", (int)body_len, body);
    }
    response_free(&r);
    free(body);
    fflush(stdout);
    return result;
}

/* Sends a progress step (downloading, verified, installed, swapped, probing) for the live
 * view. Best effort: a step that does not arrive changes no outcome. */
static void progress(device *d, const char *step) {
    char report[512];
    int n = snprintf(report, sizeof report, "{\"device_id\":\"%s\",\"status\":\"in_progress\"}",
                     d->s->device_id);
    if (n > 0 && (size_t)n < sizeof report) {
        send_report(d, report, (size_t)n, step, 2);
    }
}

/* Polls for an assignment. Returns EXIT_DONE with *assignment_out malloc'd (or NULL when
 * there is none), or why not. */
static int poll_assignment(device *d, char **assignment_out, size_t *len_out) {
    char url[4096];
    response r = {0};
    long k;
    int result = EXIT_RETRY;
    *assignment_out = NULL;
    snprintf(url, sizeof url, "%s/api/v1/devices/%s/ota", d->s->server, d->device_escaped);
    for (k = 0; k < d->s->attempts; k++) {
        if (k > 0) {
            backoff(k);
        }
        if (!http_call(d, url, NULL, 0, &r, MAX_JSON_ANSWER, 1)) {
            continue;
        }
        if (r.status == 204) {
            result = EXIT_DONE;
            break;
        }
        if (r.status == 200 && r.json && r.len > 0) {
            *assignment_out = r.body; /* the caller frees it */
            *len_out = r.len;
            r.body = NULL;
            result = EXIT_DONE;
            break;
        }
        if (r.status == 200) {
            /* Not the JSON an assignment is: a garbled answer. Ask again. */
            fprintf(stderr, "ota-c-agent: the poll's answer is not JSON; asking again\n");
            continue;
        }
        print_refusal("poll", &r);
        result = EXIT_DENIED;
        break;
    }
    response_free(&r);
    return result;
}

/* Fetches one chunk and hands it to the agent. A wrong answer (another offset or length, a
 * cut body) is asked for again; a chunk the agent finds corrupt is asked for again by the
 * agent itself (a new fetch command). */
static int fetch_chunk(device *d, ota_agent *agent, const char *package_id, uint64_t offset,
                       uint32_t length) {
    char url[4096];
    char *pkg = curl_easy_escape(d->curl, package_id, 0);
    response r = {0};
    long k;
    int result = EXIT_RETRY;
    if (!pkg) {
        return EXIT_RETRY;
    }
    snprintf(url, sizeof url, "%s/api/v1/devices/%s/ota/chunk?package_id=%s&offset=%" PRIu64
             "&length=%" PRIu32, d->s->server, d->device_escaped, pkg, offset, length);
    curl_free(pkg);
    for (k = 0; k < d->s->attempts; k++) {
        ota_status st;
        bool fresh = false;
        if (k > 0) {
            backoff(k);
        }
        if (!http_call(d, url, NULL, 0, &r, MAX_CHUNK, 1)) {
            continue;
        }
        if (r.status != 200 && r.status != 206) {
            print_refusal("chunk", &r);
            result = EXIT_DENIED;
            break;
        }
        if (r.len != length || (r.ota_offset >= 0 && (uint64_t)r.ota_offset != offset)) {
            fprintf(stderr, "ota-c-agent: asked for %" PRIu32 " bytes at %" PRIu64
                    ", got %zu at %lld; asking again\n", length, offset, r.len, r.ota_offset);
            continue;
        }
        st = ota_agent_handle_chunk(agent, offset, (const uint8_t *)r.body, r.len, now_ms(),
                                    &fresh);
        if (st != OTA_STATUS_OK) {
            /* CHUNK_DIGEST_MISMATCH: the agent queued a fetch of it again. Anything else
             * (an install that failed) shows in the agent's next commands. */
            fprintf(stderr, "ota-c-agent: chunk at %" PRIu64 ": %s: %s\n", offset,
                    status_name(st), ota_error());
        }
        result = EXIT_DONE;
        break;
    }
    response_free(&r);
    return result;
}

/* ------------------------------------------------------------------------------------------
 * The drive loop: carry out the agent's commands, in order.
 * ---------------------------------------------------------------------------------------- */

static bool queue_fetch(device *d, uint64_t offset, uint32_t length) {
    if (d->pending_n == d->pending_cap) {
        size_t cap = d->pending_cap ? d->pending_cap * 2 : 64;
        uint64_t *o = realloc(d->pending_offset, cap * sizeof *o);
        uint32_t *l;
        if (!o) {
            return false;
        }
        d->pending_offset = o;
        l = realloc(d->pending_length, cap * sizeof *l);
        if (!l) {
            return false;
        }
        d->pending_length = l;
        d->pending_cap = cap;
    }
    d->pending_offset[d->pending_n] = offset;
    d->pending_length[d->pending_n] = length;
    d->pending_n++;
    return true;
}

/* Takes the agent's next command; its text lands in d->text (grown as needed). */
static ota_status next_command(device *d, ota_agent *agent, ota_command *c, size_t *n) {
    ota_status st = ota_agent_poll(agent, c, d->text, d->text_cap, n);
    if (st == OTA_STATUS_INSUFFICIENT_SIZE) {
        /* Nothing is lost: the same command comes again with a buffer big enough. */
        char *bigger = realloc(d->text, *n + 1);
        if (!bigger) {
            return st;
        }
        d->text = bigger;
        d->text_cap = *n + 1;
        st = ota_agent_poll(agent, c, d->text, d->text_cap, n);
    }
    return st;
}

/* What the last report said, for the exit status. */
typedef enum { OUTCOME_NONE, OUTCOME_SUCCESS, OUTCOME_FAILURE } outcome;

/* Carries out every pending command, in order. Fetches are only queued here (they are done,
 * shuffled, by run()). Returns EXIT_DONE, or why the cycle must stop. */
static int drain(device *d, ota_agent *agent, outcome *last) {
    for (;;) {
        ota_command c;
        size_t n = 0;
        ota_status st = next_command(d, agent, &c, &n);
        uint64_t now = now_ms();
        if (st != OTA_STATUS_OK) {
            fprintf(stderr, "ota-c-agent: ota_agent_poll: %s: %s\n", status_name(st), ota_error());
            return EXIT_STORAGE;
        }
        switch (c.kind) {
        case OTA_COMMAND_KIND_NONE:
            return EXIT_DONE;
        case OTA_COMMAND_KIND_PERSIST:
            /* Durable before anything that follows. */
            if (!write_atomically(d->s->state_dir, "record.json", d->text, n)) {
                fprintf(stderr, "ota-c-agent: cannot write the record: %s\n", strerror(errno));
                return EXIT_STORAGE;
            }
            break;
        case OTA_COMMAND_KIND_FETCH:
            if (!queue_fetch(d, c.offset, c.length)) {
                return EXIT_STORAGE;
            }
            break;
        case OTA_COMMAND_KIND_SWAP: {
            /* Everything is verified and installed. Make the slot this update wrote active
             * (repeating it after a restart changes nothing). */
            const char *target = slot_of(d, "installing", NULL);
            progress(d, "installed");
            if (!target || !point(d, "current", target)) {
                fprintf(stderr, "ota-c-agent: cannot switch the active slot\n");
                return EXIT_STORAGE;
            }
            printf("swapped: %s is active\n", target);
            st = ota_agent_handle_swapped(agent, now);
            if (st != OTA_STATUS_OK) {
                fprintf(stderr, "ota-c-agent: swapped: %s: %s\n", status_name(st), ota_error());
            }
            progress(d, "swapped");
            break;
        }
        case OTA_COMMAND_KIND_PROBE: {
            bool healthy = false;
            char detail[1024];
            size_t dn = 0;
            if (!d->probing_reported) {
                d->probing_reported = true;
                progress(d, "probing");
            }
            st = ota_probe_run(d->text, n, d->allowlist, d->allowlist_len, c.swapped_at, &healthy,
                               detail, sizeof detail, &dn);
            if (st == OTA_STATUS_INSUFFICIENT_SIZE) {
                /* The probe ran; only its detail is cut. */
                detail[0] = '\0';
                dn = 0;
            } else if (st != OTA_STATUS_OK) {
                healthy = false;
                dn = (size_t)snprintf(detail, sizeof detail, "the probe could not run: %s",
                                      ota_error());
                if (dn >= sizeof detail) {
                    dn = sizeof detail - 1;
                }
            }
            printf("probe: %s (%s)\n", healthy ? "healthy" : "unhealthy", detail);
            st = ota_agent_handle_probe_result(agent, healthy, detail, dn, now_ms());
            if (st != OTA_STATUS_OK) {
                fprintf(stderr, "ota-c-agent: probe result: %s: %s\n", status_name(st), ota_error());
            }
            break;
        }
        case OTA_COMMAND_KIND_RESTORE_PREVIOUS: {
            /* The new version failed: make the other slot active again. */
            const char *written = slot_of(d, "installing", NULL);
            if (!written || !point(d, "current", other_slot(written))) {
                fprintf(stderr, "ota-c-agent: cannot restore the previous slot\n");
                return EXIT_STORAGE;
            }
            printf("restored: %s is active\n", other_slot(written));
            st = ota_agent_handle_restored(agent, now);
            if (st != OTA_STATUS_OK) {
                fprintf(stderr, "ota-c-agent: restored: %s: %s\n", status_name(st), ota_error());
            }
            break;
        }
        case OTA_COMMAND_KIND_REPORT: {
            /* The agent reports `in_progress` when it takes an assignment (sent with the
             * `downloading` step, best effort), and the outcome. An outcome that cannot be
             * delivered stops the cycle *before* the record moves on, so the next start
             * sends it again. */
            bool in_progress = strstr(d->text, "\"status\":\"in_progress\"") != NULL;
            int rc = send_report(d, d->text, n, in_progress ? "downloading" : NULL,
                                 d->s->attempts);
            if (in_progress) {
                break;
            }
            *last = strstr(d->text, "\"status\":\"success\"") ? OUTCOME_SUCCESS : OUTCOME_FAILURE;
            if (rc != EXIT_DONE) {
                return rc;
            }
            break;
        }
        default:
            fprintf(stderr, "ota-c-agent: unknown command %u\n", (unsigned)c.kind);
            return EXIT_STORAGE;
        }
    }
}

/* The package of the update in progress: the record's update.assignment.package_id (the
 * record is persisted before the agent asks for any chunk). */
static bool record_package(device *d, char *out, size_t n) {
    char path[4096];
    char *record;
    size_t len = 0, ulen = 0, alen = 0;
    const char *update, *assignment;
    bool ok;
    join_path(path, sizeof path, d->s->state_dir, "record.json");
    record = read_file(path, &len);
    if (!record) {
        return false;
    }
    ok = json_member(record, len, "update", &update, &ulen) &&
         json_member(update, ulen, "assignment", &assignment, &alen) &&
         json_string(assignment, alen, "package_id", out, n);
    free(record);
    return ok;
}

/* The package the update in progress downloads: the record's, or --chunks-of. */
static bool package_of(device *d, char *out, size_t n) {
    if (d->s->chunks_of) {
        snprintf(out, n, "%s", d->s->chunks_of);
        return true;
    }
    return record_package(d, out, n);
}

/* A chunk was refused: does the server still assign the update being downloaded? When its
 * assignment is gone (the rollout cancelled the device's command) or names another package,
 * the agent is told the update was cancelled: nothing active was touched, it reports the
 * failure and is free for the next assignment. */
static int check_withdrawn(device *d, ota_agent *agent) {
    char *assignment = NULL, current[256] = "", package_id[256] = "";
    size_t len = 0;
    int rc;
    if (!record_package(d, package_id, sizeof package_id)) {
        return EXIT_DENIED;
    }
    rc = poll_assignment(d, &assignment, &len);
    if (rc != EXIT_DONE) {
        return rc;
    }
    if (assignment != NULL) {
        json_string(assignment, len, "package_id", current, sizeof current);
        free(assignment);
    }
    if (strcmp(current, package_id) == 0) {
        return EXIT_DENIED; /* still assigned, yet refused: try again later */
    }
    fprintf(stderr, "ota-c-agent: the server no longer assigns %s: the update is cancelled\n",
            package_id);
    if (ota_agent_handle_cancel(agent, now_ms()) != OTA_STATUS_OK) {
        fprintf(stderr, "ota-c-agent: cancel: %s\n", ota_error());
        return EXIT_STORAGE;
    }
    d->pending_n = 0;
    return EXIT_DONE;
}

/* Runs the agent until it rests (idle, or waiting on nothing): carries out its commands,
 * fetches the chunks it asks for in random order, and ticks it when a probe or the download
 * deadline is due. */
static int run(device *d, ota_agent *agent, outcome *last, uint64_t deadline) {
    char package_id[256] = "";
    for (;;) {
        uint64_t at = 0, now;
        int rc = drain(d, agent, last);
        if (rc != EXIT_DONE) {
            return rc;
        }
        if (d->pending_n > 0 && ota_agent_timeout(agent, &at) == OTA_STATUS_OK &&
            at <= now_ms()) {
            /* The download deadline passed (download_deadline_ms in the configuration): the
             * agent fails the update, and what is left to fetch is dropped. */
            d->pending_n = 0;
            if (ota_agent_handle_tick(agent, now_ms()) != OTA_STATUS_OK) {
                fprintf(stderr, "ota-c-agent: tick: %s\n", ota_error());
            }
            continue;
        }
        if (now_ms() > deadline && strcmp(ota_agent_state(agent), "downloading") == 0) {
            /* Only a download stops at the deadline (its chunks stay staged): a probe cut
             * short would count as a failed one. */
            fprintf(stderr, "ota-c-agent: the download ran past --cycle-ms; the record keeps "
                            "the progress\n");
            return EXIT_RETRY;
        }
        if (d->pending_n > 0) {
            /* Any order will do: each chunk is verified on its own as it arrives. */
            size_t i = (size_t)(next_random() % d->pending_n);
            uint64_t offset = d->pending_offset[i];
            uint32_t length = d->pending_length[i];
            d->pending_offset[i] = d->pending_offset[d->pending_n - 1];
            d->pending_length[i] = d->pending_length[d->pending_n - 1];
            d->pending_n--;
            if (package_id[0] == '\0' && !package_of(d, package_id, sizeof package_id)) {
                fprintf(stderr, "ota-c-agent: the record names no package to fetch\n");
                return EXIT_STORAGE;
            }
            rc = fetch_chunk(d, agent, package_id, offset, length);
            if (rc == EXIT_DENIED) {
                rc = check_withdrawn(d, agent);
            }
            if (rc != EXIT_DONE) {
                return rc;
            }
            if (d->pending_n == 0 && strcmp(ota_agent_state(agent), "swapped") == 0) {
                /* The last chunk is in: the whole artifact is verified and installed, and
                 * the agent asks for the swap (its next command). */
                progress(d, "verified");
            }
            continue;
        }
        if (ota_agent_timeout(agent, &at) != OTA_STATUS_OK || at == UINT64_MAX) {
            return EXIT_DONE; /* the agent waits only on input: it rests */
        }
        now = now_ms();
        if (at > now) {
            sleep_ms(at - now);
        }
        if (ota_agent_handle_tick(agent, now_ms()) != OTA_STATUS_OK) {
            fprintf(stderr, "ota-c-agent: tick: %s\n", ota_error());
        }
    }
}

/* One cycle: start the agent from its record (resuming an update that a restart
 * interrupted); if it has nothing to finish, poll for an assignment; run it until it rests.
 * The agent is freed at the end: everything it needs next time is in the record. */
static int cycle(device *d) {
    const ota_device_io io = {d, stage_write, stage_read, slot_open, slot_write, slot_flush};
    uint64_t deadline = now_ms() + (uint64_t)d->s->cycle_ms;
    ota_agent *agent = NULL;
    char path[4096];
    char *record = NULL, *assignment = NULL;
    size_t record_len = 0, assignment_len = 0;
    outcome last = OUTCOME_NONE;
    ota_status st;
    int rc;

    d->pending_n = 0; /* what was asked before a restart is asked again */
    d->probing_reported = false;
    remove_leftovers(d->s->state_dir, "record.json");
    join_path(path, sizeof path, d->s->state_dir, "record.json");
    record = read_file(path, &record_len); /* NULL: a new device */
    /* ota_agent_new re-verifies what was staged. (An update proved by TUF would use
     * ota_agent_restore with the package its TUF client verified again.) */
    st = ota_agent_new(d->config, d->config_len, record, record_len, now_ms(), &io, &agent);
    free(record);
    if (st != OTA_STATUS_OK) {
        fprintf(stderr, "ota-c-agent: starting the agent: %s: %s\n", status_name(st), ota_error());
        return st == OTA_STATUS_IO ? EXIT_STORAGE : EXIT_USAGE;
    }
    rc = drain(d, agent, &last);
    if (rc == EXIT_DONE && last == OUTCOME_NONE && strcmp(ota_agent_state(agent), "idle") == 0) {
        /* Nothing to finish: ask the server. */
        rc = poll_assignment(d, &assignment, &assignment_len);
        if (rc == EXIT_DONE && assignment == NULL) {
            printf("no update\n");
        } else if (rc == EXIT_DONE) {
            /* The agent checks the signature, the fit and the version; a refusal queues a
             * `rejected` report, which run() sends. */
            st = ota_agent_handle_assignment(agent, assignment, assignment_len, now_ms());
            if (st != OTA_STATUS_OK) {
                fprintf(stderr, "ota-c-agent: assignment refused: %s: %s\n", status_name(st),
                        ota_error());
                printf("assignment refused: %s\n", status_name(st));
            } else {
                printf("assignment taken\n");
            }
        }
        free(assignment);
    }
    if (rc == EXIT_DONE) {
        rc = run(d, agent, &last, deadline);
    }
    if (rc == EXIT_DONE) {
        printf("state: %s\n", ota_agent_state(agent));
    }
    ota_agent_free(agent);
    fflush(stdout);
    if (rc == EXIT_DONE && last == OUTCOME_FAILURE) {
        return EXIT_UPDATE_FAILED;
    }
    return rc;
}

/* Sets the device up: credential, configuration, state directory, HTTP handle. */
static int open_device(device *d, const settings *s) {
    char path[4096], header[4096];
    char *credential;
    size_t len = 0;
    const char *allow = NULL;
    size_t allow_len = 0;
    memset(d, 0, sizeof *d);
    d->s = s;
    d->staging_fd = -1;
    d->slot_fd = -1;

    credential = read_file(s->credential_file, &len);
    if (!credential) {
        fprintf(stderr, "ota-c-agent: --credential %s: %s\n", s->credential_file, strerror(errno));
        return EXIT_USAGE;
    }
    while (len > 0 && (credential[len - 1] == '\n' || credential[len - 1] == '\r' ||
                       credential[len - 1] == ' ')) {
        credential[--len] = '\0';
    }
    snprintf(header, sizeof header, "Authorization: Bearer %s", credential);
    free(credential);

    d->config = read_file(s->config_file, &d->config_len);
    if (!d->config) {
        fprintf(stderr, "ota-c-agent: --config %s: %s\n", s->config_file, strerror(errno));
        return EXIT_USAGE;
    }
    /* The executables a probe may run: the same list the agent admits probes with. */
    if (json_member(d->config, d->config_len, "exec_allowlist", &allow, &allow_len)) {
        d->allowlist = allow;
        d->allowlist_len = allow_len;
    } else {
        d->allowlist = "[]";
        d->allowlist_len = 2;
    }

    if (mkdir(s->state_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "ota-c-agent: --state %s: %s\n", s->state_dir, strerror(errno));
        return EXIT_STORAGE;
    }
    join_path(path, sizeof path, s->state_dir, "staging.bin");
    d->staging_fd = open(path, O_RDWR | O_CREAT, 0600);
    if (d->staging_fd < 0) {
        fprintf(stderr, "ota-c-agent: %s: %s\n", path, strerror(errno));
        return EXIT_STORAGE;
    }
    /* A device out of the factory runs slot A. */
    join_path(path, sizeof path, s->state_dir, "current");
    if (access(path, F_OK) != 0 && !point(d, "current", "slot-a")) {
        fprintf(stderr, "ota-c-agent: %s: %s\n", path, strerror(errno));
        return EXIT_STORAGE;
    }

    d->curl = curl_easy_init();
    d->headers = curl_slist_append(NULL, header);
    d->headers = curl_slist_append(d->headers, "Content-Type: application/json");
    d->headers = curl_slist_append(d->headers, "Expect:"); /* no 100-continue round trip */
    d->device_escaped = d->curl ? curl_easy_escape(d->curl, s->device_id, 0) : NULL;
    d->text_cap = 1 << 16;
    d->text = malloc(d->text_cap);
    if (!d->curl || !d->headers || !d->device_escaped || !d->text) {
        fprintf(stderr, "ota-c-agent: out of memory\n");
        return EXIT_STORAGE;
    }
    return EXIT_DONE;
}

static void close_device(device *d) {
    if (d->staging_fd >= 0) {
        close(d->staging_fd);
    }
    if (d->slot_fd >= 0) {
        close(d->slot_fd);
    }
    curl_free(d->device_escaped);
    curl_slist_free_all(d->headers);
    if (d->curl) {
        curl_easy_cleanup(d->curl);
    }
    free(d->config);
    free(d->text);
    free(d->pending_offset);
    free(d->pending_length);
}

int main(int argc, char **argv) {
    settings s;
    device d;
    long n;
    int rc;
    if (!parse_args(argc, argv, &s)) {
        usage(argv[0]);
        return EXIT_USAGE;
    }
    rng_state ^= s.seed ? s.seed : now_ms() ^ ((uint64_t)getpid() << 32);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "ota-c-agent: libcurl would not start\n");
        return EXIT_STORAGE;
    }
    rc = open_device(&d, &s);
    if (rc != EXIT_DONE) {
        close_device(&d);
        curl_global_cleanup();
        return rc;
    }
    /* The loop goes on whatever a cycle ended with, bad arguments apart: a refusal or a
     * storage error may pass (the server's assignment changes, a disk frees up), and the
     * record keeps the progress. */
    for (n = 0; rc != EXIT_USAGE; n++) {
        if (n > 0) {
            /* The next poll after the interval, with jitter so a fleet spreads. */
            if (s.once || (s.max_cycles > 0 && n >= s.max_cycles)) {
                break;
            }
            sleep_ms((uint64_t)s.poll_ms + next_random() % ((uint64_t)s.poll_ms / 10 + 1));
        }
        rc = cycle(&d);
        printf("cycle %ld: exit %d\n", n + 1, rc);
        fflush(stdout);
    }
    close_device(&d);
    curl_global_cleanup();
    return rc;
}
