/* A control plane in C: runs seed 004's rollout (240 eligible sensors, a 5 % canary of 12, an
 * approved second wave, completion) and seed 000's (a 4-device canary, one probe failure, the
 * rollout paused with no device down); persists the rollout as a snapshot and restores it;
 * keeps the audit trail, replays it into the same state and catches an edited or dropped
 * record; and checks that bad input gets the right status.
 * Usage: rollout DIR   (DIR holds fleet-*.json, envelope-*.json, config-*.json, trusted.hex) */
#include "check.h"

#include <stdint.h>

static const char *dir;
static const uint64_t T0 = 1700000000000ull;

/* --- A growing text buffer: the audit trail, the events. --- */

typedef struct {
    char *data;
    size_t len, cap;
} text;

static void text_append(text *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->data = realloc(t->data, t->cap);
        if (!t->data) {
            exit(2);
        }
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = 0;
}

/* Polls the next output into a malloc'd string, growing the buffer as the library asks; its
 * kind in *kind. Returns NULL when nothing is pending (kind OTA_ROLLOUT_OUTPUT_NONE). */
static char *poll_next(ota_rollout *r, ota_rollout_output *kind) {
    size_t n = 0;
    char *buf;
    ota_status s = ota_rollout_poll(r, kind, NULL, 0, &n);
    if (s == OTA_STATUS_OK) {
        CHECK(*kind == OTA_ROLLOUT_OUTPUT_NONE && n == 0);
        return NULL;
    }
    CHECK(s == OTA_STATUS_INSUFFICIENT_SIZE);
    buf = malloc(n + 1);
    CHECK_STATUS(ota_rollout_poll(r, kind, buf, n + 1, &n), OTA_STATUS_OK);
    if (*kind == OTA_ROLLOUT_OUTPUT_NONE) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Copies the string value of "key" in a JSON object into out. */
static int json_string(const char *json, const char *key, char *out, size_t n) {
    char pat[128];
    const char *p, *end;
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    p = strstr(json, pat);
    if (!p) {
        return 0;
    }
    p += strlen(pat);
    end = strchr(p, '"');
    if (!end || (size_t)(end - p) >= n) {
        return 0;
    }
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = 0;
    return 1;
}

/* The host drains the rollout's one queue in order: each audit record to the trail before
 * the commands and events it caused, the devices sent the package to a queue, the events to
 * a log. */
#define MAX_SENT 512
static char sent[MAX_SENT][32];
static char queued[MAX_SENT][32];
static int nqueued;
static text *host_trail, *host_events;
static int recorded; /* an audit record came first */

static void host_begin(text *trail, text *events) {
    host_trail = trail;
    host_events = events;
    nqueued = 0;
    recorded = 0;
}

static void pump(ota_rollout *r) {
    ota_rollout_output kind = OTA_ROLLOUT_OUTPUT_NONE;
    char *s;
    while ((s = poll_next(r, &kind)) != NULL) {
        if (kind == OTA_ROLLOUT_OUTPUT_AUDIT) {
            recorded = 1;
            text_append(host_trail, s, strlen(s));
            text_append(host_trail, "\n", 1);
        } else if (kind == OTA_ROLLOUT_OUTPUT_EVENT) {
            CHECK(recorded); /* never before its record */
            text_append(host_events, s, strlen(s));
            text_append(host_events, "\n", 1);
        } else if (kind == OTA_ROLLOUT_OUTPUT_COMMAND) {
            CHECK(recorded);
            if (strstr(s, "\"kind\":\"send\"") != NULL && nqueued < MAX_SENT) {
                CHECK(json_string(s, "device_id", queued[nqueued], sizeof queued[nqueued]));
                nqueued++;
            }
        } else {
            CHECK(0);
        }
        free(s);
    }
}

/* Moves every pending output to the host. */
static void drain(ota_rollout *r) {
    pump(r);
}

/* The devices sent the package since the last call, into sent[start] on; how many. */
static int poll_sends(ota_rollout *r, int start) {
    int i, count = 0;
    pump(r);
    for (i = 0; i < nqueued && start + count < MAX_SENT; i++, count++) {
        memcpy(sent[start + count], queued[i], sizeof sent[0]);
    }
    nqueued = 0;
    return count;
}

static void report(ota_rollout *r, const char *device, const char *status, const char *version,
                   uint64_t now) {
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "{\"device_id\":\"%s\",\"rollout_id\":\"rol_4c7e\",\"firmware_version\":\"%s\","
                     "\"status\":\"%s\"%s}",
                     device, version, status,
                     strcmp(status, "failure") == 0 ? ",\"reason\":\"health probe failed\"" : "");
    CHECK_STATUS(ota_rollout_handle_report(r, buf, (size_t)n, now), OTA_STATUS_OK);
}

static char *status_of(const ota_rollout *r) {
    size_t n = 0;
    char *buf;
    CHECK(ota_rollout_status(r, NULL, 0, &n) == OTA_STATUS_INSUFFICIENT_SIZE);
    buf = malloc(n + 1);
    CHECK_STATUS(ota_rollout_status(r, buf, n + 1, &n), OTA_STATUS_OK);
    return buf;
}

static int status_contains(const ota_rollout *r, const char *needle, int quiet) {
    char *s = status_of(r);
    int found = strstr(s, needle) != NULL;
    if (!found && !quiet) {
        fprintf(stderr, "status lacks %s: %s\n", needle, s);
    }
    free(s);
    return found;
}

static int status_has(const ota_rollout *r, const char *needle) {
    return status_contains(r, needle, 0);
}

static char *snapshot_of(const ota_rollout *r) {
    size_t n = 0;
    char *buf;
    CHECK(ota_rollout_snapshot(r, NULL, 0, &n) == OTA_STATUS_INSUFFICIENT_SIZE);
    buf = malloc(n + 1);
    CHECK_STATUS(ota_rollout_snapshot(r, buf, n + 1, &n), OTA_STATUS_OK);
    return buf;
}

static ota_status command(ota_rollout *r, const char *what, size_t wave, uint64_t now) {
    return ota_rollout_command(r, what, strlen(what), wave, "alice",
                               5, now);
}

/* --- Inputs from DIR. --- */

/* A text file from DIR (JSON, hex), NUL-terminated. */
typedef struct {
    char *data;
    size_t len;
} blob;

static blob load(const char *name) {
    blob b;
    b.data = read_text(dir, name, &b.len);
    return b;
}

static ota_verified_package *verified(const ota_trusted_keys *keys, const char *name) {
    blob env = load(name);
    ota_verified_package *p = NULL;
    CHECK_STATUS(ota_envelope_verify(env.data, env.len, keys, 1, &p), OTA_STATUS_OK);
    free(env.data);
    return p;
}

static ota_rollout *create(const char *config_name, const char *fleet_name,
                           const ota_verified_package *pkg, const ota_verified_package *rb,
                           ota_status expected) {
    blob config = load(config_name), fleet = load(fleet_name);
    ota_rollout *r = NULL;
    CHECK_STATUS(ota_rollout_create(config.data, config.len, pkg, rb, fleet.data, fleet.len, T0, &r),
                 expected);
    free(config.data);
    free(fleet.data);
    return r;
}

/* Seed 004: 240 eligible of 260, a 5 % canary of 12; the rest waits for an approval. Drives the
 * rollout to completion, snapshotting and restoring it on the way, and checks its trail. */
static void seed_004(const ota_verified_package *pkg, const ota_verified_package *rb) {
    text trail = {0}, events = {0};
    ota_rollout *r = create("config-004.json", "fleet-004.json", pkg, rb, OTA_STATUS_OK);
    ota_rollout *restored = NULL, *replayed = NULL;
    uint64_t now = T0, at = 0, records = 0;
    int canary, i, rest, round;
    char *snap, *snap2, *c;
    size_t n = 0;
    if (!r) {
        return;
    }
    CHECK(status_has(r, "\"status\":\"active\""));
    CHECK(status_has(r, "\"canary_percent\":5"));
    CHECK(status_has(r, "\"eligible\":240"));
    CHECK(status_has(r, "\"scheduled_count\":12"));
    CHECK(status_has(r, "\"incompatible\":20"));

    /* A buffer too small loses nothing: the same output comes with a bigger one. The first is
     * the creation's audit record: a host records before it acts. */
    host_begin(&trail, &events);
    {
        static char small[8], big[16384], again[16384];
        ota_rollout_output kind = OTA_ROLLOUT_OUTPUT_NONE;
        CHECK_STATUS(ota_rollout_poll(r, &kind, small, sizeof small, &n), OTA_STATUS_INSUFFICIENT_SIZE);
        CHECK(n > sizeof small);
        CHECK_STATUS(ota_rollout_poll(r, &kind, big, sizeof big, &n), OTA_STATUS_OK);
        CHECK(kind == OTA_ROLLOUT_OUTPUT_AUDIT);
        CHECK(strstr(big, "\"create\"") != NULL);
        text_append(&trail, big, strlen(big));
        text_append(&trail, "\n", 1);
        recorded = 1;
        CHECK_STATUS(ota_rollout_poll(r, &kind, again, sizeof again, &n), OTA_STATUS_OK);
        CHECK(strcmp(big, again) != 0); /* the next one: the `started` event */
        CHECK(kind == OTA_ROLLOUT_OUTPUT_EVENT);
        text_append(&events, again, strlen(again));
        text_append(&events, "\n", 1);
    }
    canary = poll_sends(r, 0);
    CHECK(canary == 12);
    printf("seed 004: scheduled_count %d\n", canary);
    drain(r);
    CHECK(strstr(events.data, "\"subject\":\"profile.ota.rollout.started.acme.rol_4c7e\"") != NULL);

    /* A success naming another version than the package is refused, and recorded; so is a
     * report that names no rollout. */
    {
        char buf[256];
        int n = snprintf(buf, sizeof buf,
                         "{\"device_id\":\"%s\",\"rollout_id\":\"rol_4c7e\","
                         "\"firmware_version\":\"1.2.0\",\"status\":\"success\"}", sent[0]);
        CHECK_STATUS(ota_rollout_handle_report(r, buf, (size_t)n, now), OTA_STATUS_INVALID_VALUE);
        CHECK(strncmp(last_error(), "firmware_version: ", 18) == 0);
        n = snprintf(buf, sizeof buf, "{\"device_id\":\"%s\",\"status\":\"failure\"}", sent[0]);
        CHECK_STATUS(ota_rollout_handle_report(r, buf, (size_t)n, now), OTA_STATUS_MISSING_FIELD);
        CHECK(strncmp(last_error(), "rollout_id: ", 12) == 0);
        drain(r);
        CHECK(strstr(trail.data, "\"report_refused\"") != NULL);
    }

    /* A success naming no version is refused too. The attempt travels: the rollout says each
     * device's current attempt, and a report about another attempt counts for nothing. */
    {
        char buf[256];
        uint32_t attempt = 0;
        size_t before = trail.len;
        int n = snprintf(buf, sizeof buf,
                         "{\"device_id\":\"%s\",\"rollout_id\":\"rol_4c7e\",\"status\":\"success\"}",
                         sent[0]);
        CHECK_STATUS(ota_rollout_handle_report(r, buf, (size_t)n, now), OTA_STATUS_MISSING_FIELD);
        CHECK(strncmp(last_error(), "firmware_version: ", 18) == 0);
        CHECK_STATUS(ota_rollout_attempt(r, sent[0], strlen(sent[0]), &attempt), OTA_STATUS_OK);
        CHECK(attempt == 1);
        CHECK_STATUS(ota_rollout_attempt(r, "dev-nobody", 10, &attempt),
                     OTA_STATUS_ROLLOUT_NOT_FOUND);
        CHECK_STATUS(ota_rollout_attempt(r, sent[0], strlen(sent[0]), NULL),
                     OTA_STATUS_NULL_POINTER);
        n = snprintf(buf, sizeof buf,
                     "{\"device_id\":\"%s\",\"rollout_id\":\"rol_4c7e\",\"status\":\"failure\"}",
                     sent[0]);
        CHECK_STATUS(ota_rollout_handle_report_attempt(r, buf, (size_t)n, 2, now),
                     OTA_STATUS_ROLLOUT_STATE);
        CHECK(strncmp(last_error(), "attempt: ", 9) == 0);
        CHECK_STATUS(ota_rollout_handle_report_attempt(r, buf, (size_t)n, 0, now),
                     OTA_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(ota_rollout_handle_report_attempt(NULL, buf, (size_t)n, 1, now),
                     OTA_STATUS_NULL_POINTER);
        /* The report says attempt 2 back, the call says 1: which is it? */
        n = snprintf(buf, sizeof buf,
                     "{\"device_id\":\"%s\",\"rollout_id\":\"rol_4c7e\",\"status\":\"failure\","
                     "\"attempt\":2}", sent[0]);
        CHECK_STATUS(ota_rollout_handle_report_attempt(r, buf, (size_t)n, 1, now),
                     OTA_STATUS_INVALID_ARGUMENT);
        /* Said back in the report itself, the stale attempt is refused the same way. */
        CHECK_STATUS(ota_rollout_handle_report(r, buf, (size_t)n, now), OTA_STATUS_ROLLOUT_STATE);
        drain(r);
        CHECK(strstr(trail.data + before, "\"report_refused\"") != NULL);
        /* The current attempt's report counts. */
        n = snprintf(buf, sizeof buf,
                     "{\"device_id\":\"%s\",\"rollout_id\":\"rol_4c7e\",\"status\":\"in_progress\"}",
                     sent[0]);
        CHECK_STATUS(ota_rollout_handle_report_attempt(r, buf, (size_t)n, 1, now), OTA_STATUS_OK);
        drain(r);
    }

    /* The canary succeeds. */
    now += 60000;
    for (i = 0; i < canary; i++) {
        report(r, sent[i], "in_progress", "1.2.0", now);
        report(r, sent[i], "success", "2.0.0", now + 1000);
    }
    drain(r);
    CHECK(poll_sends(r, 0) == 0); /* the next wave waits for its approval */
    CHECK(status_has(r, "\"succeeded\":12"));

    /* Persist, restore, and carry on with the restored rollout. */
    snap = snapshot_of(r);
    CHECK_STATUS(ota_rollout_restore(snap, strlen(snap), pkg, rb, &restored), OTA_STATUS_OK);
    snap2 = snapshot_of(restored);
    CHECK(strcmp(snap, snap2) == 0);
    free(snap2);
    ota_rollout_free(r);
    r = restored;

    now += 3600000;
    CHECK_STATUS(command(r, "approve", 1, now), OTA_STATUS_OK);
    drain(r);
    CHECK(strstr(events.data, "\"kind\":\"approved\"") != NULL);
    rest = 0;
    for (round = 0; round < 100 && !status_contains(r, "\"status\":\"completed\"", 1); round++) {
        int k = poll_sends(r, 0);
        rest += k;
        for (i = 0; i < k; i++) {
            report(r, sent[i], "success", "2.0.0", now);
        }
        drain(r);
        CHECK_STATUS(ota_rollout_timeout(r, &at), OTA_STATUS_OK);
        if (k == 0 && at != UINT64_MAX) {
            now = at > now ? at : now;
            CHECK_STATUS(ota_rollout_handle_tick(r, now), OTA_STATUS_OK);
        } else if (k == 0) {
            break;
        }
    }
    drain(r);
    CHECK(rest == 240 - 12);
    CHECK(status_has(r, "\"status\":\"completed\""));
    CHECK(status_has(r, "\"succeeded\":240"));
    CHECK(strstr(events.data, "profile.ota.rollout.completed.acme.rol_4c7e") != NULL);
    /* A finished rollout takes no more operator commands, and says why. */
    CHECK_STATUS(command(r, "pause", 0, now), OTA_STATUS_ROLLOUT_STATE);
    CHECK(strstr(last_error(), "completed") != NULL);
    /* A late report is recorded, but changes nothing. */
    report(r, sent[0], "failure", "1.2.0", now + 5);
    drain(r);
    CHECK(status_has(r, "\"status\":\"completed\""));

    /* The trail verifies, and replaying it rebuilds the same rollout. */
    CHECK_STATUS(ota_audit_verify(trail.data, trail.len, &records), OTA_STATUS_OK);
    CHECK(records > 240 + 12);
    CHECK(strstr(trail.data, "\"approve\"") != NULL);
    {
        blob config = load("config-004.json"), fleet = load("fleet-004.json");
        CHECK_STATUS(ota_rollout_replay(config.data, config.len, pkg, rb, fleet.data, fleet.len, T0,
                                        trail.data, trail.len, &replayed),
                     OTA_STATUS_OK);
        free(snap);
        snap = snapshot_of(r);
        if (replayed) {
            snap2 = snapshot_of(replayed);
            CHECK(strcmp(snap, snap2) == 0);
            free(snap2);
            ota_rollout_free(replayed);
        }
        /* Replayed at another creation time, it diverges at once. */
        replayed = NULL;
        CHECK_STATUS(ota_rollout_replay(config.data, config.len, pkg, rb, fleet.data, fleet.len, T0 + 1,
                                        trail.data, trail.len, &replayed),
                     OTA_STATUS_REPLAY_MISMATCH);
        CHECK(replayed == NULL);
        free(config.data);
        free(fleet.data);
    }

    /* The trail ends at the head the status carries; without its last record it does not,
     * though its chain still links. */
    {
        char *st = status_of(r), head[160], hash[80];
        const char *p = strstr(st, "\"audit_head\":{\"seq\":");
        unsigned long long seq = 0;
        char *last;
        CHECK(p != NULL);
        if (p) {
            seq = strtoull(p + strlen("\"audit_head\":{\"seq\":"), NULL, 10);
            CHECK(json_string(p, "hash", hash, sizeof hash));
        }
        snprintf(head, sizeof head, "%llu:%s", seq, hash);
        CHECK(seq + 1 == records);
        CHECK_STATUS(ota_audit_verify_head(trail.data, trail.len, head,
                                           strlen(head), &records),
                     OTA_STATUS_OK);
        trail.data[trail.len - 1] = 0; /* the last line, without its newline */
        last = strrchr(trail.data, '\n') + 1;
        trail.data[trail.len - 1] = '\n';
        CHECK_STATUS(ota_audit_verify(trail.data, (size_t)(last - trail.data), &records),
                     OTA_STATUS_OK);
        CHECK_STATUS(ota_audit_verify_head(trail.data, (size_t)(last - trail.data),
                                           head, strlen(head), &records),
                     OTA_STATUS_AUDIT_BROKEN);
        CHECK_STATUS(ota_audit_verify_head(trail.data, trail.len, "7:zz", 4,
                                           &records),
                     OTA_STATUS_INVALID_ARGUMENT);
        free(st);
    }

    /* Editing one record, or dropping one, is caught (a success is a report line,
     * [at,"dev-…","success","2.0.0"], or a whole record's "status":"success"). */
    c = strstr(trail.data, "\"success\"");
    CHECK(c != NULL);
    if (c) {
        memcpy(c + 1, "failure", 7);
        CHECK_STATUS(ota_audit_verify(trail.data, trail.len, &records), OTA_STATUS_AUDIT_BROKEN);
        memcpy(c + 1, "success", 7);
        CHECK_STATUS(ota_audit_verify(trail.data, trail.len, &records), OTA_STATUS_OK);
    }
    {
        char *second = strchr(trail.data, '\n') + 1;
        char *third = strchr(second, '\n') + 1;
        text dropped = {0};
        text_append(&dropped, trail.data, (size_t)(second - trail.data));
        text_append(&dropped, third, strlen(third));
        CHECK_STATUS(ota_audit_verify(dropped.data, dropped.len, &records),
                     OTA_STATUS_AUDIT_BROKEN);
        CHECK(strstr(last_error(), "1") != NULL);
        free(dropped.data);
    }

    /* A snapshot restores only with its own packages, and only whole. */
    {
        ota_rollout *bad = NULL;
        CHECK_STATUS(ota_rollout_restore(snap, strlen(snap), rb, NULL, &bad),
                     OTA_STATUS_PLAN_INVALID);
        CHECK(strstr(last_error(), "package") != NULL);
        CHECK(bad == NULL);
        CHECK_STATUS(ota_rollout_restore(snap, strlen(snap), pkg, NULL, &bad),
                     OTA_STATUS_PLAN_INVALID);
        CHECK(bad == NULL);
        CHECK(ota_rollout_restore(snap, strlen(snap) / 2, pkg, rb, &bad) != OTA_STATUS_OK);
        CHECK(bad == NULL);
    }
    free(snap);
    free(trail.data);
    free(events.data);
    ota_rollout_free(r);
}

/* Seed 000: a 4-device canary, one probe failure: the halt rule trips, the rollout pauses, and
 * no device is down (the failed one restored its previous version on its own). */
static void seed_000(const ota_verified_package *pkg) {
    text trail = {0}, events = {0};
    ota_rollout *r = create("config-000.json", "fleet-000.json", pkg, NULL, OTA_STATUS_OK);
    uint64_t now = T0 + 1000, records = 0;
    int canary, i;
    if (!r) {
        return;
    }
    host_begin(&trail, &events);
    canary = poll_sends(r, 0);
    CHECK(canary == 4);
    for (i = 0; i < canary; i++) {
        report(r, sent[i], "in_progress", "1.2.0", now);
        if (i == 2) {
            report(r, sent[i], "failure", "1.2.0", now);
        } else {
            report(r, sent[i], "success", "2.1.0", now);
        }
    }
    drain(r);
    CHECK(status_has(r, "\"status\":\"paused\""));
    CHECK(status_has(r, "\"fleet_impact\":0"));
    CHECK(status_has(r, "in the canary"));
    CHECK(strstr(events.data, "\"subject\":\"profile.ota.rollout.paused.acme.rol_4c7e\"") != NULL);
    printf("seed 000: paused, fleet impact 0\n");

    /* Paused: nothing goes out, however much time passes; pausing again changes nothing. */
    CHECK_STATUS(ota_rollout_handle_tick(r, now + 3600000), OTA_STATUS_OK);
    CHECK(poll_sends(r, 0) == 0);
    CHECK_STATUS(command(r, "pause", 0, now), OTA_STATUS_OK);
    CHECK(status_has(r, "\"status\":\"paused\""));
    /* Resume acknowledges the failure; abort ends it for good. */
    CHECK_STATUS(command(r, "resume", 0, now + 3600000), OTA_STATUS_OK);
    CHECK(status_has(r, "\"status\":\"active\""));
    CHECK_STATUS(command(r, "abort", 0, now + 3600001), OTA_STATUS_OK);
    CHECK(status_has(r, "\"status\":\"aborted\""));
    CHECK_STATUS(command(r, "resume", 0, now + 3600002), OTA_STATUS_ROLLOUT_STATE);
    drain(r);
    CHECK(strstr(events.data, "profile.ota.rollout.resumed.acme.rol_4c7e") != NULL);
    CHECK(strstr(events.data, "profile.ota.rollout.aborted.acme.rol_4c7e") != NULL);
    CHECK_STATUS(ota_audit_verify(trail.data, trail.len, &records), OTA_STATUS_OK);
    CHECK(records >= 11);

    /* Membership: a device that leaves is removed; one the rollout never knew is not found. */
    CHECK_STATUS(ota_rollout_leave(r, "dev-0001", 8, now), OTA_STATUS_OK);
    CHECK(status_has(r, "\"removed\":1"));
    CHECK_STATUS(ota_rollout_leave(r, "dev-9999", 8, now), OTA_STATUS_ROLLOUT_NOT_FOUND);
    free(trail.data);
    free(events.data);
    ota_rollout_free(r);
}

/* Bad input: each gets its own status, and the last error names the field. */
static void bad_input(const ota_verified_package *pkg, const ota_verified_package *rb) {
    ota_rollout *r = create("config-invalid.json", "fleet-004.json", pkg, NULL, OTA_STATUS_INVALID);
    CHECK(r == NULL);
    CHECK(strstr(last_error(), "canary_percent") != NULL);
    r = create("config-mismatch.json", "fleet-004.json", pkg, NULL, OTA_STATUS_PLAN_INVALID);
    CHECK(r == NULL);
    CHECK(strstr(last_error(), "package") != NULL);
    /* The request names a rollback package that was not given. */
    r = create("config-004.json", "fleet-004.json", pkg, NULL, OTA_STATUS_PLAN_INVALID);
    CHECK(r == NULL);
    CHECK_STATUS(ota_rollout_create("{", 1, pkg, rb, "[]", 2, T0, &r),
                 OTA_STATUS_JSON_SYNTAX);
    CHECK_STATUS(ota_rollout_create(NULL, 5, pkg, rb, "[]", 2, T0, &r), OTA_STATUS_NULL_POINTER);

    r = create("config-004.json", "fleet-004.json", pkg, rb, OTA_STATUS_OK);
    if (!r) {
        return;
    }
    {
        const char *unknown = "{\"device_id\":\"dev-9999\",\"rollout_id\":\"rol_4c7e\",\"status\":\"success\"}";
        const char *malformed = "{\"device_id\":\"dev-0001\",\"status\":\"exploded\"}";
        char *s;
        text trail = {0}, events = {0};
        CHECK_STATUS(ota_rollout_handle_report(r, unknown, strlen(unknown), T0),
                     OTA_STATUS_ROLLOUT_NOT_FOUND);
        CHECK(ota_rollout_handle_report(r, malformed, strlen(malformed), T0) != OTA_STATUS_OK);
        CHECK(strstr(last_error(), "status") != NULL);
        CHECK_STATUS(command(r, "explode", 0, T0), OTA_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(command(r, "approve", 7, T0), OTA_STATUS_ROLLOUT_NOT_FOUND);
        CHECK_STATUS(ota_rollout_handle_tick(NULL, T0), OTA_STATUS_NULL_POINTER);
        /* Handles of another type are refused by their tags, not read. */
        {
            size_t n = 0;
            ota_rollout *none = NULL;
            ota_rollout_output kind = OTA_ROLLOUT_OUTPUT_NONE;
            CHECK_STATUS(ota_rollout_status((const ota_rollout *)pkg, NULL, 0, &n), OTA_STATUS_WRONG_HANDLE);
            CHECK(strcmp(last_error(), "`rollout` is an ota_verified_package, not an ota_rollout") == 0);
            CHECK_STATUS(ota_rollout_poll(r, NULL, NULL, 0, &n), OTA_STATUS_NULL_POINTER);
            CHECK_STATUS(ota_rollout_poll((ota_rollout *)(void *)rb, &kind, NULL, 0, &n), OTA_STATUS_WRONG_HANDLE);
            none = create("config-004.json", "fleet-004.json", (const ota_verified_package *)r, rb,
                          OTA_STATUS_WRONG_HANDLE);
            CHECK(strstr(last_error(), "`package` is an ota_rollout") != NULL);
            none = create("config-004.json", "fleet-004.json", pkg, (const ota_verified_package *)r,
                          OTA_STATUS_WRONG_HANDLE);
            CHECK(strstr(last_error(), "`rollback` is an ota_rollout") != NULL);
            {
                char *snap = snapshot_of(r);
                CHECK_STATUS(ota_rollout_restore(snap, strlen(snap), pkg, (const ota_verified_package *)r, &none),
                             OTA_STATUS_WRONG_HANDLE);
                free(snap);
            }
            CHECK(none == NULL);
        }
        /* Nothing above changed the rollout: its trail still holds only the creation. */
        host_begin(&trail, &events);
        drain(r);
        CHECK(trail.data != NULL && strstr(trail.data, "\"create\"") != NULL);
        s = trail.data ? strchr(trail.data, '\n') : NULL;
        CHECK(s != NULL && s[1] == 0); /* one record */
        free(trail.data);
        free(events.data);
    }
    ota_rollout_free(r);
    ota_rollout_free(NULL);
}

int main(int argc, char **argv) {
    ota_trusted_keys *keys = NULL;
    ota_verified_package *v200, *v210, *v190;
    blob hex;
    if (argc != 2) {
        fprintf(stderr, "usage: rollout DIR\n");
        return 2;
    }
    dir = argv[1];
    hex = load("trusted.hex");
    CHECK_STATUS(ota_trusted_keys_new(&keys), OTA_STATUS_OK);
    CHECK_STATUS(ota_trusted_keys_add(keys, hex.data, hex.len), OTA_STATUS_OK);
    free(hex.data);
    v200 = verified(keys, "envelope-2.0.0.json");
    v210 = verified(keys, "envelope-2.1.0.json");
    v190 = verified(keys, "envelope-1.9.0.json");

    seed_004(v200, v190);
    seed_000(v210);
    bad_input(v200, v190);

    ota_verified_package_free(v200);
    ota_verified_package_free(v210);
    ota_verified_package_free(v190);
    ota_trusted_keys_free(keys);
    return check_summary("rollout");
}
