/* A firmware agent in C: updates from a directory of chunks served in shuffled order, with
 * one corrupted chunk that must be refetched and a power cut in the middle; then probes
 * with the real runner, and commits (2.0.0, /bin/true) or rolls back on its own (2.1.0,
 * /bin/false). An assignment signed by an unknown key is refused.
 * Usage: agent DIR   (DIR holds config.json, assign-*.json, artifact-*.enc, plain-*.bin) */
#include "check.h"

#include <stdint.h>
#include <unistd.h>

static const char *dir;
static uint64_t now = 1700000000000ull;

static void path_of(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", dir, name);
}

static unsigned char *slurp(const char *name, size_t *len) {
    return read_file(dir, name, len);
}

/* A text file (JSON, hex): what the library takes as `const char *` and a length. */
static char *slurp_text(const char *name, size_t *len) {
    return read_text(dir, name, len);
}

static void spit(const char *name, const void *data, size_t len) {
    char p[4096], tmp[4200];
    FILE *f;
    path_of(p, sizeof p, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    f = fopen(tmp, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(data, 1, len, f) == len);
    fclose(f);
    CHECK(rename(tmp, p) == 0); /* atomic replace, as a persisted record needs */
}

/* --- The device's storage: staging, two slots, which one is active. --- */

static int active_slot(void) {
    size_t n = 0;
    unsigned char *a = slurp("active", &n);
    int s = n > 0 && a[0] == 'b';
    free(a);
    return s;
}

static void set_active(int slot) {
    spit("active", slot ? "b" : "a", 1);
}

static const char *slot_name(int slot) {
    return slot ? "slot-b.bin" : "slot-a.bin";
}

/* What a slot holds: the text of the swap that activated it ({"name","version"}). */
static int active_label_is(const char *text, size_t n) {
    size_t m = 0;
    const char *name = active_slot() ? "label-b" : "label-a";
    char p[4096];
    unsigned char *l = NULL;
    int same;
    path_of(p, sizeof p, name);
    if (access(p, F_OK) != 0) {
        return 0; /* unlabelled: what the device shipped with */
    }
    l = slurp(name, &m);
    same = m == n && memcmp(l, text, n) == 0;
    free(l);
    return same;
}

/* A swap names what to activate: never a toggle. Done already (a power cut came after it):
 * nothing to do. Otherwise the inactive slot is labelled first, then activated. */
static void swap_to(const char *text, size_t n) {
    int target = !active_slot();
    if (active_label_is(text, n)) {
        return;
    }
    spit(target ? "label-b" : "label-a", text, n);
    set_active(target);
}

/* A restore names the failed update: only while its slot is active is the other one
 * activated. */
static void restore_from(const char *text, size_t n) {
    if (active_label_is(text, n)) {
        set_active(!active_slot());
    }
}

/* The power goes right after the host's next swap (1) or restore (2), before the agent
 * hears of it; `power_went` tells `run` to boot again. */
static int cut_after_switch = 0;
static int power_went = 0;

static int stage_write(void *ctx, uint64_t offset, const uint8_t *data, size_t len) {
    char p[4096];
    FILE *f;
    (void)ctx;
    path_of(p, sizeof p, "staging.bin");
    f = fopen(p, "r+b");
    if (!f) {
        f = fopen(p, "w+b");
    }
    if (!f || fseek(f, (long)offset, SEEK_SET) != 0 || fwrite(data, 1, len, f) != len) {
        return 1;
    }
    return fclose(f) == 0 ? 0 : 1;
}

static int stage_read(void *ctx, uint64_t offset, uint8_t *buf, size_t len) {
    char p[4096];
    FILE *f;
    size_t got;
    (void)ctx;
    path_of(p, sizeof p, "staging.bin");
    f = fopen(p, "rb");
    if (!f || fseek(f, (long)offset, SEEK_SET) != 0) {
        if (f) {
            fclose(f);
        }
        return 1;
    }
    got = fread(buf, 1, len, f);
    fclose(f);
    return got == len ? 0 : 1;
}

static FILE *slot_file = NULL;

static int slot_open(void *ctx) {
    char p[4096];
    (void)ctx;
    if (slot_file) {
        fclose(slot_file);
    }
    path_of(p, sizeof p, slot_name(!active_slot()));
    slot_file = fopen(p, "wb");
    return slot_file ? 0 : 1;
}

static int slot_write(void *ctx, const uint8_t *data, size_t len) {
    (void)ctx;
    return slot_file && fwrite(data, 1, len, slot_file) == len ? 0 : 1;
}

static int slot_flush(void *ctx) {
    (void)ctx;
    if (!slot_file || fflush(slot_file) != 0 || fsync(fileno(slot_file)) != 0) {
        return 1;
    }
    fclose(slot_file);
    slot_file = NULL;
    return 0;
}

static ota_device_io io = {NULL, stage_write, stage_read, slot_open, slot_write, slot_flush};

/* --- The chunk server: a queue of requested chunks, served shuffled. --- */

#define MAX_PENDING 4096
static uint64_t pending_off[MAX_PENDING];
static uint32_t pending_len[MAX_PENDING];
static size_t pending_n = 0;
static int corrupted_once = 0;
static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static char last_report[2048];
static int reports = 0;

static ota_agent *boot(void) {
    ota_agent *agent = NULL;
    size_t len = 0, rlen = 0;
    char *config = slurp_text("config.json", &len);
    char p[4096];
    char *record = NULL;
    path_of(p, sizeof p, "record.json");
    if (access(p, F_OK) == 0) {
        record = slurp_text("record.json", &rlen);
    }
    now += 1000;
    CHECK_STATUS(ota_agent_new(config, len, record, rlen, now, &io, &agent), OTA_STATUS_OK);
    free(config);
    free(record);
    pending_n = 0; /* what was asked before the power cut is gone with the RAM */
    return agent;
}

/* Carries out every pending command, in order. */
static void drain(ota_agent *agent) {
    ota_command c;
    static char text[1 << 18];
    size_t n = 0;
    for (;;) {
        CHECK_STATUS(ota_agent_poll(agent, &c, text, sizeof text, &n), OTA_STATUS_OK);
        if (c.kind == OTA_COMMAND_KIND_NONE) {
            CHECK(n == 0);
            return;
        }
        switch (c.kind) {
        case OTA_COMMAND_KIND_PERSIST:
            spit("record.json", text, n);
            break;
        case OTA_COMMAND_KIND_FETCH:
            CHECK(pending_n < MAX_PENDING);
            pending_off[pending_n] = c.offset;
            pending_len[pending_n] = c.length;
            pending_n++;
            break;
        case OTA_COMMAND_KIND_SWAP:
            swap_to(text, n);
            if (cut_after_switch == 1) {
                cut_after_switch = 0;
                power_went = 1;
                return;
            }
            CHECK_STATUS(ota_agent_handle_swapped(agent, now), OTA_STATUS_OK);
            break;
        case OTA_COMMAND_KIND_PROBE: {
            bool healthy = false;
            char detail[512];
            size_t dn = 0;
            const char *allow = "[\"/bin/true\",\"/bin/false\"]";
            CHECK_STATUS(ota_probe_run(text, n, allow, strlen(allow), c.swapped_at, &healthy, detail, sizeof detail, &dn),
                         OTA_STATUS_OK);
            CHECK_STATUS(ota_agent_handle_probe_result(agent, healthy, detail, dn, now), OTA_STATUS_OK);
            break;
        }
        case OTA_COMMAND_KIND_RESTORE_PREVIOUS:
            restore_from(text, n);
            if (cut_after_switch == 2) {
                cut_after_switch = 0;
                power_went = 1;
                return;
            }
            CHECK_STATUS(ota_agent_handle_restored(agent, now), OTA_STATUS_OK);
            break;
        case OTA_COMMAND_KIND_REPORT:
            CHECK(n < sizeof last_report);
            memcpy(last_report, text, n + 1);
            reports++;
            printf("report: %s\n", text);
            break;
        default:
            CHECK(!"unknown command");
            return;
        }
    }
}

/* Runs the agent until it rests; cuts the power after `cut_after` delivered chunks
 * (0: never). Returns the agent, which may be a new one. */
static ota_agent *run(ota_agent *agent, const char *artifact_name, size_t cut_after) {
    size_t len = 0, delivered = 0, i;
    unsigned char *artifact = slurp(artifact_name, &len);
    uint8_t chunk[65536];
    for (;;) {
        uint64_t at = 0;
        drain(agent);
        if (power_went) {
            printf("power cut right after the host switched slots, state %s\n", ota_agent_state(agent));
            power_went = 0;
            ota_agent_free(agent);
            agent = boot();
            continue;
        }
        if (pending_n > 0) {
            /* Serve a random pending chunk. */
            i = (size_t)(next_rand() % pending_n);
            memcpy(chunk, artifact + pending_off[i], pending_len[i]);
            if (pending_off[i] == 65536 && !corrupted_once) {
                chunk[100] ^= 0x5a; /* corrupted on the wire */
                corrupted_once = 1;
                CHECK_STATUS(ota_agent_handle_chunk(agent, pending_off[i], chunk, pending_len[i], now, NULL),
                             OTA_STATUS_CHUNK_DIGEST_MISMATCH);
                CHECK(strstr(last_error(), "chunk 1 ") != NULL);
            } else {
                bool fresh = false;
                CHECK_STATUS(ota_agent_handle_chunk(agent, pending_off[i], chunk, pending_len[i], now, &fresh),
                             OTA_STATUS_OK);
                delivered++;
            }
            pending_off[i] = pending_off[pending_n - 1];
            pending_len[i] = pending_len[pending_n - 1];
            pending_n--;
            if (cut_after && delivered == cut_after) {
                printf("power cut after %zu chunks, state %s\n", delivered, ota_agent_state(agent));
                ota_agent_free(agent); /* everything in RAM is gone */
                agent = boot();
                cut_after = 0;
            }
            continue;
        }
        CHECK_STATUS(ota_agent_timeout(agent, &at), OTA_STATUS_OK);
        if (at == UINT64_MAX) {
            break;
        }
        now = now > at ? now : at;
        CHECK_STATUS(ota_agent_handle_tick(agent, now), OTA_STATUS_OK);
    }
    free(artifact);
    return agent;
}

static int active_slot_is(const char *plain_name) {
    size_t a = 0, b = 0;
    unsigned char *want = slurp(plain_name, &a);
    unsigned char *have = slurp(slot_name(active_slot()), &b);
    int same = a == b && memcmp(want, have, a) == 0;
    free(want);
    free(have);
    return same;
}

static void assign(ota_agent *agent, const char *name, ota_status expected) {
    size_t len = 0;
    char *a = slurp_text(name, &len);
    CHECK_STATUS(ota_agent_handle_assignment(agent, a, len, now), expected);
    free(a);
}

static void errors(ota_agent *agent) {
    ota_agent *none = NULL;
    ota_command c;
    char buf[64];
    size_t n = 0;
    uint64_t at = 0;
    ota_device_io broken = io;
    broken.slot_open = NULL;
    CHECK_STATUS(ota_agent_new("{}", 2, NULL, 0, now, &io, &none), OTA_STATUS_MISSING_FIELD);
    CHECK_STATUS(ota_agent_new(NULL, 5, NULL, 0, now, &io, &none), OTA_STATUS_NULL_POINTER);
    {
        size_t len = 0;
        char *config = slurp_text("config.json", &len);
        CHECK_STATUS(ota_agent_new(config, len, "{\"state\":\"probing\"}", 19, now, &io, &none),
                     OTA_STATUS_INVALID);
        CHECK_STATUS(ota_agent_new(config, len, NULL, 0, now, &broken, &none), OTA_STATUS_NULL_POINTER);
        CHECK_STATUS(ota_agent_new(config, len, NULL, 0, now, NULL, &none), OTA_STATUS_NULL_POINTER);
        CHECK_STATUS(ota_agent_new(config, len, NULL, 0, now, &io, NULL), OTA_STATUS_NULL_POINTER);
        free(config);
    }
    CHECK(none == NULL);
    CHECK_STATUS(ota_agent_handle_swapped(agent, now), OTA_STATUS_WRONG_STATE);
    CHECK_STATUS(ota_agent_handle_restored(agent, now), OTA_STATUS_WRONG_STATE);
    /* Nothing in progress: a cancel is harmless. */
    CHECK_STATUS(ota_agent_handle_cancel(agent, now), OTA_STATUS_OK);
    CHECK_STATUS(ota_agent_handle_cancel(NULL, now), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_agent_handle_probe_result(agent, true, NULL, 0, now), OTA_STATUS_WRONG_STATE);
    CHECK_STATUS(ota_agent_handle_chunk(agent, 0, (const uint8_t *)"x", 1, now, NULL), OTA_STATUS_WRONG_STATE);
    CHECK_STATUS(ota_agent_handle_assignment(agent, "{", 1, now), OTA_STATUS_JSON_SYNTAX);
    CHECK_STATUS(ota_agent_handle_assignment(NULL, "{}", 2, now), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_agent_poll(agent, NULL, buf, sizeof buf, &n), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_agent_poll(NULL, &c, buf, sizeof buf, &n), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_agent_poll(agent, &c, buf, sizeof buf, NULL), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_agent_timeout(NULL, &at), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_agent_installed_version(agent, "temp-sensor-fw", 14, buf, 2, &n),
                 OTA_STATUS_INSUFFICIENT_SIZE);
    CHECK(ota_agent_state(NULL) == NULL);
    {
        bool healthy = true;
        const char *spec = "{\"kind\":\"exec\",\"path\":\"/usr/bin/other\",\"timeout_ms\":1000}";
        const char *allow = "[\"/bin/true\"]";
        /* An allowlisted launcher never runs: its arguments would be any command. */
        const char *shell = "{\"kind\":\"exec\",\"path\":\"/usr/bin/env\",\"args\":[\"sh\",\"-c\",\"exit 0\"],"
                            "\"timeout_ms\":1000}";
        const char *allow_env = "[\"/usr/bin/env\"]";
        char detail[512];
        CHECK_STATUS(ota_probe_run(spec, strlen(spec), allow, strlen(allow), 0, &healthy, buf, sizeof buf, &n),
                     OTA_STATUS_OK);
        CHECK(!healthy); /* not on the allowlist: unhealthy */
        CHECK(strstr(buf, "allowlist") != NULL);
        healthy = true;
        CHECK_STATUS(ota_probe_run(shell, strlen(shell), allow_env, strlen(allow_env), 0, &healthy, detail,
                                   sizeof detail, &n),
                     OTA_STATUS_OK);
        CHECK(!healthy);
        CHECK(strstr(detail, "interpreter or launcher") != NULL);
        CHECK_STATUS(ota_probe_run(spec, strlen(spec), allow, strlen(allow), 0, &healthy, buf, 4, &n),
                     OTA_STATUS_INSUFFICIENT_SIZE);
        CHECK_STATUS(ota_probe_run("{", 1, allow, strlen(allow), 0, &healthy, buf, sizeof buf, &n),
                     OTA_STATUS_JSON_SYNTAX);
        CHECK_STATUS(ota_probe_run(spec, strlen(spec), allow, strlen(allow), 0, NULL, buf, sizeof buf, &n),
                     OTA_STATUS_NULL_POINTER);
    }
    ota_agent_free(NULL);
}

/* A package the host verified, from an envelope of the fixture. */
static ota_verified_package *verified(const char *envelope_name) {
    size_t len = 0, klen = 0;
    char *env = slurp_text(envelope_name, &len);
    char *trusted_hex = slurp_text("trusted.hex", &klen);
    ota_trusted_keys *t = NULL;
    ota_verified_package *vp = NULL;
    CHECK_STATUS(ota_trusted_keys_new(&t), OTA_STATUS_OK);
    CHECK_STATUS(ota_trusted_keys_add(t, trusted_hex, klen), OTA_STATUS_OK);
    CHECK_STATUS(ota_envelope_verify(env, len, t, 1, &vp), OTA_STATUS_OK);
    ota_trusted_keys_free(t);
    free(env);
    free(trusted_hex);
    return vp;
}

/* An assignment with the package the host verified (the TUF route's entry point), and a
 * restore with it after a power cut. Returns the agent, which is a new one. */
static ota_agent *verified_assignment(ota_agent *agent) {
    ota_verified_package *v210 = verified("envelope-2.1.0.json");
    ota_verified_package *v190 = verified("envelope-1.9.0.json");
    ota_agent *none = NULL;
    size_t len = 0, clen = 0, rlen = 0;
    char *a = slurp_text("assign-2.1.0.json", &len);
    char *tuf = NULL;
    char *config = slurp_text("config.json", &clen);
    char *record = NULL;

    /* Another package than the envelope proves; a TUF target backed by no TUF client. */
    CHECK_STATUS(ota_agent_handle_verified_assignment(agent, a, len, v190, now), OTA_STATUS_STATEMENT_INVALID);
    CHECK_STATUS(ota_agent_handle_verified_assignment(agent, a, len, NULL, now), OTA_STATUS_NULL_POINTER);
    /* A handle of another type is refused by its tag, not read. */
    CHECK_STATUS(ota_agent_handle_verified_assignment(agent, a, len, (const ota_verified_package *)agent, now),
                 OTA_STATUS_WRONG_HANDLE);
    CHECK(strcmp(last_error(), "`package` is an ota_agent, not an ota_verified_package") == 0);
    CHECK_STATUS(ota_agent_handle_verified_assignment((ota_agent *)v210, a, len, v210, now), OTA_STATUS_WRONG_HANDLE);
    CHECK(ota_agent_state((const ota_agent *)v190) == NULL);
    CHECK(strstr(last_error(), "ota_verified_package") != NULL);
    free(a);
    tuf = slurp_text("assign-tuf.json", &len);
    CHECK_STATUS(ota_agent_handle_assignment(agent, tuf, len, now), OTA_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(last_error(), "temp-sensor-fw/2.1.0/fw.enc") != NULL);
    CHECK_STATUS(ota_agent_handle_verified_assignment(agent, tuf, len, v210, now), OTA_STATUS_INVALID_ARGUMENT);
    free(tuf);
    drain(agent);
    CHECK(strcmp(ota_agent_state(agent), "idle") == 0);

    /* The same package as the envelope: taken. */
    a = slurp_text("assign-2.1.0.json", &len);
    CHECK_STATUS(ota_agent_handle_verified_assignment(agent, a, len, v210, now), OTA_STATUS_OK);
    free(a);
    drain(agent);
    CHECK(strcmp(ota_agent_state(agent), "downloading") == 0);

    /* The power goes; the host restores the agent with the package verified again. A live
     * handle of another type in the package's place is refused. */
    record = slurp_text("record.json", &rlen);
    CHECK_STATUS(ota_agent_restore(config, clen, record, rlen, (const ota_verified_package *)agent, now, &io, &none),
                 OTA_STATUS_WRONG_HANDLE);
    ota_agent_free(agent);
    pending_n = 0;
    CHECK_STATUS(ota_agent_restore(config, clen, record, rlen, v190, now, &io, &none), OTA_STATUS_RECORD_INVALID);
    CHECK(none == NULL);
    CHECK_STATUS(ota_agent_restore(config, clen, NULL, 0, NULL, now, &io, &none), OTA_STATUS_JSON_SYNTAX);
    CHECK(none == NULL);
    CHECK_STATUS(ota_agent_restore(config, clen, record, rlen, v210, now, &io, &agent), OTA_STATUS_OK);
    CHECK(strcmp(ota_agent_state(agent), "downloading") == 0);
    free(record);
    free(config);
    ota_verified_package_free(v210);
    ota_verified_package_free(v190);

    /* 2.1.0 fails its probe again: restored to 2.0.0. */
    agent = run(agent, "artifact-2.1.0.enc", 0);
    CHECK(strstr(last_report, "\"status\":\"failure\"") != NULL);
    CHECK(active_slot_is("plain-2.0.0.bin"));
    CHECK(strcmp(ota_agent_state(agent), "idle") == 0);
    return agent;
}

/* The parts the agent is made of: a download in any order and an install of its prefix. */
typedef struct {
    FILE *f;
} out_file;

static int write_out(void *ctx, const uint8_t *data, size_t len) {
    return fwrite(data, 1, len, ((out_file *)ctx)->f) == len ? 0 : 1;
}

static void download_and_install(void) {
    size_t len = 0, klen = 0, alen = 0, n = 0, verified = 0, total = 0, installed = 0, needed = 0, i;
    char *env = slurp_text("envelope-2.0.0.json", &len);
    char *trusted_hex = slurp_text("trusted.hex", &klen);
    unsigned char *key = slurp("key.bin", &n);
    unsigned char *artifact = slurp("artifact-2.0.0.enc", &alen);
    ota_trusted_keys *t = NULL;
    ota_verified_package *vp = NULL;
    ota_download *d = NULL, *again = NULL;
    ota_install *inst = NULL;
    uint64_t offsets[64];
    uint32_t lengths[64];
    char state[4096], info[512], again_info[512], out_path[4096];
    out_file out;
    bool fresh = false;

    CHECK(n == 32);
    CHECK_STATUS(ota_trusted_keys_new(&t), OTA_STATUS_OK);
    CHECK_STATUS(ota_trusted_keys_add(t, trusted_hex, klen), OTA_STATUS_OK);
    CHECK_STATUS(ota_envelope_verify(env, len, t, 1, &vp), OTA_STATUS_OK);
    CHECK_STATUS(ota_download_new(vp, &d), OTA_STATUS_OK);
    CHECK_STATUS(ota_download_plan(d, offsets, lengths, 64, &n), OTA_STATUS_OK);
    CHECK(n == 7 && offsets[1] == 65536 && lengths[0] == 65536);
    CHECK_STATUS(ota_download_progress(d, &verified, &total), OTA_STATUS_OK);
    CHECK(verified == 0 && total == 7);
    /* Last chunk first, then the rest backwards; each twice. */
    for (i = n; i-- > 0;) {
        CHECK_STATUS(ota_download_accept(d, offsets[i], artifact + offsets[i], lengths[i], &io, &fresh), OTA_STATUS_OK);
        CHECK(fresh);
        CHECK_STATUS(ota_download_accept(d, offsets[i], artifact + offsets[i], lengths[i], &io, &fresh), OTA_STATUS_OK);
        CHECK(!fresh);
    }
    CHECK_STATUS(ota_download_accept(d, 7, artifact, 10, &io, NULL), OTA_STATUS_CHUNK_MISALIGNED);
    CHECK_STATUS(ota_download_accept(d, (uint64_t)alen, artifact, 10, &io, NULL), OTA_STATUS_CHUNK_OUT_OF_RANGE);
    CHECK_STATUS(ota_download_accept(d, 65536, artifact, 65536, &io, NULL), OTA_STATUS_CHUNK_DIGEST_MISMATCH);
    CHECK_STATUS(ota_download_state(d, state, sizeof state, &n), OTA_STATUS_OK);
    CHECK_STATUS(ota_download_resume(vp, state, n, &io, &again), OTA_STATUS_OK);
    CHECK_STATUS(ota_download_progress(again, &verified, &total), OTA_STATUS_OK);
    CHECK(verified == 7);

    /* Chunk 2 rots in staging: the install finds it and asks for it again. */
    stage_write(NULL, 2 * 65536 + 5, (const uint8_t *)"rot", 3);
    snprintf(out_path, sizeof out_path, "%s/installed.bin", dir);
    out.f = fopen(out_path, "wb");
    CHECK_STATUS(ota_install_new(vp, key, 32, write_out, &out, &inst), OTA_STATUS_OK);
    CHECK_STATUS(ota_install_advance(inst, again, &io, &installed), OTA_STATUS_STORED_CHUNK_CORRUPT);
    CHECK(strstr(last_error(), "chunk 2") != NULL);
    CHECK_STATUS(ota_download_plan(again, offsets, lengths, 64, &n), OTA_STATUS_OK);
    CHECK(n == 1 && offsets[0] == 2 * 65536);
    CHECK_STATUS(ota_download_accept(again, offsets[0], artifact + offsets[0], lengths[0], &io, NULL), OTA_STATUS_OK);
    CHECK_STATUS(ota_install_advance(inst, again, &io, &installed), OTA_STATUS_OK);
    CHECK(installed == 7);
    /* A buffer too small loses nothing: the install is finished, and the result waits for a
     * larger buffer (NULL asks for the length alone). */
    CHECK_STATUS(ota_install_finish(inst, info, 8, &n), OTA_STATUS_INSUFFICIENT_SIZE);
    CHECK(n > 8 && n < sizeof info);
    CHECK_STATUS(ota_install_finish(inst, NULL, 0, &needed), OTA_STATUS_INSUFFICIENT_SIZE);
    CHECK(needed == n);
    CHECK_STATUS(ota_install_advance(inst, again, &io, &installed), OTA_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ota_install_finish(inst, info, needed + 1, &n), OTA_STATUS_OK);
    CHECK(n == needed && strlen(info) == n);
    CHECK(strstr(info, "\"plaintext_size\":400000") != NULL);
    /* Again: the same result. */
    CHECK_STATUS(ota_install_finish(inst, again_info, sizeof again_info, &n), OTA_STATUS_OK);
    CHECK(strcmp(info, again_info) == 0);
    fclose(out.f);
    {
        size_t a = 0, b = 0;
        unsigned char *want = slurp("plain-2.0.0.bin", &a);
        unsigned char *have = slurp("installed.bin", &b);
        CHECK(a == b && memcmp(want, have, a) == 0);
        free(want);
        free(have);
    }
    CHECK_STATUS(ota_download_new(NULL, &d), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_download_plan(again, NULL, lengths, 4, &n), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_install_new(vp, key, 31, write_out, &out, &inst), OTA_STATUS_INVALID_KEY);
    CHECK_STATUS(ota_download_progress(again, NULL, &total), OTA_STATUS_NULL_POINTER);
    /* Handles of another type are refused by their tags, not read. */
    CHECK_STATUS(ota_download_new((const ota_verified_package *)again, &d), OTA_STATUS_WRONG_HANDLE);
    CHECK_STATUS(ota_download_progress((const ota_download *)vp, &verified, &total), OTA_STATUS_WRONG_HANDLE);
    CHECK_STATUS(ota_install_advance(inst, (ota_download *)inst, &io, &installed), OTA_STATUS_WRONG_HANDLE);
    CHECK_STATUS(ota_install_finish((ota_install *)again, info, sizeof info, &n), OTA_STATUS_WRONG_HANDLE);
    CHECK(strstr(last_error(), "ota_download, not an ota_install") != NULL);
    ota_install_free(inst);
    ota_install_free(NULL);
    ota_download_free(d);
    ota_download_free(again);
    ota_download_free(NULL);
    ota_verified_package_free(vp);
    ota_trusted_keys_free(t);
    free(env);
    free(trusted_hex);
    free(key);
    free(artifact);
    remove("staging.bin");
}

int main(int argc, char **argv) {
    ota_agent *agent;
    char version[32];
    size_t n = 0;
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    set_active(0);

    agent = boot();
    CHECK(strcmp(ota_agent_state(agent), "idle") == 0);

    /* An assignment signed by an unknown key: refused, nothing written. */
    assign(agent, "assign-evil.json", OTA_STATUS_THRESHOLD_NOT_MET);
    drain(agent);
    CHECK(strstr(last_report, "\"status\":\"rejected\"") != NULL);
    CHECK(active_slot_is("plain-1.2.0.bin"));

    /* 2.0.0: shuffled chunks, one corrupted and refetched, a power cut after 3 chunks, and
     * another right after the host swaps: the swap carried out again on resume is harmless. */
    assign(agent, "assign-2.0.0.json", OTA_STATUS_OK);
    /* A buffer too small loses nothing: the same command, the record to persist before
     * anything else, comes with a bigger one. */
    {
        ota_command c;
        static char small[4], big[1 << 18];
        size_t needed = 0;
        CHECK_STATUS(ota_agent_poll(agent, &c, small, sizeof small, &needed), OTA_STATUS_INSUFFICIENT_SIZE);
        CHECK(needed > sizeof small);
        CHECK_STATUS(ota_agent_poll(agent, &c, big, sizeof big, &n), OTA_STATUS_OK);
        CHECK(c.kind == OTA_COMMAND_KIND_PERSIST && n == needed && strlen(big) == n);
        spit("record.json", big, n);
    }
    cut_after_switch = 1;
    agent = run(agent, "artifact-2.0.0.enc", 3);
    CHECK(cut_after_switch == 0);
    CHECK(corrupted_once);
    CHECK(strcmp(ota_agent_state(agent), "idle") == 0);
    CHECK(strstr(last_report, "\"status\":\"success\"") != NULL);
    CHECK(active_slot_is("plain-2.0.0.bin"));
    CHECK_STATUS(ota_agent_installed_version(agent, "temp-sensor-fw", 14, version, sizeof version, &n),
                 OTA_STATUS_OK);
    CHECK(strcmp(version, "2.0.0") == 0);

    /* 2.1.0 fails its probe: the agent restores 2.0.0 on its own. The power goes right after
     * the host restores: the restore carried out again on resume is harmless. */
    assign(agent, "assign-2.1.0.json", OTA_STATUS_OK);
    cut_after_switch = 2;
    agent = run(agent, "artifact-2.1.0.enc", 0);
    CHECK(cut_after_switch == 0);
    CHECK(strstr(last_report, "\"status\":\"failure\"") != NULL);
    CHECK(strstr(last_report, "\"firmware_version\":\"2.0.0\"") != NULL);
    CHECK(active_slot_is("plain-2.0.0.bin"));

    /* A reboot keeps the downgrade protection. */
    ota_agent_free(agent);
    agent = boot();
    drain(agent);
    assign(agent, "assign-1.9.0.json", OTA_STATUS_DOWNGRADE);

    /* A signed rollback downgrades only a device on the version it replaces, before it
     * expires: one of 2.1.0 and an expired one of 2.0.0 are refused here (on 2.0.0). */
    assign(agent, "assign-1.5.0-from-2.1.0.json", OTA_STATUS_DOWNGRADE);
    drain(agent);
    CHECK(strstr(last_report, "replaces 2.1.0, but the device runs 2.0.0") != NULL);
    assign(agent, "assign-1.5.0-expired.json", OTA_STATUS_DOWNGRADE);
    drain(agent);
    CHECK(strstr(last_report, "expired at 2020-01-01T00:00:00Z") != NULL);
    CHECK(active_slot_is("plain-2.0.0.bin"));

    /* 2.2.0's signed probe (/bin/false) is run, not the assignment's (/bin/true): it fails
     * and 2.0.0 is restored. */
    assign(agent, "assign-2.2.0-signed-probe.json", OTA_STATUS_OK);
    agent = run(agent, "artifact-2.2.0-signed-probe.enc", 0);
    CHECK(strstr(last_report, "\"status\":\"failure\"") != NULL);
    CHECK(active_slot_is("plain-2.0.0.bin"));

    agent = verified_assignment(agent);
    errors(agent);
    ota_agent_free(agent);
    download_and_install();
    printf("reports: %d\n", reports);
    return check_summary("agent");
}
