/* A C client of the publisher path: keys, streaming seal and open through write callbacks,
 * signing and verifying envelopes, the registration record, and every error path.
 * Usage: publisher FIXTURES_DIR TMP_DIR MEGABYTES */
#include "check.h"

#include <stdint.h>
#include <unistd.h>

/* The plaintext: a deterministic stream, half noise and half runs, so it compresses some. */
typedef struct {
    uint64_t x;
    uint64_t pos;
} gen_t;

static uint8_t gen_next(gen_t *g) {
    g->pos++;
    if ((g->pos >> 12) & 1) {
        return (uint8_t)(g->pos >> 13);
    }
    g->x ^= g->x << 13;
    g->x ^= g->x >> 7;
    g->x ^= g->x << 17;
    return (uint8_t)(g->x >> 24);
}

static void gen_fill(gen_t *g, uint8_t *buf, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        buf[i] = gen_next(g);
    }
}

/* Write callbacks: to a FILE, to a comparison against the generator, or one that fails. */
static int to_file(void *ctx, const uint8_t *data, size_t len) {
    return fwrite(data, 1, len, (FILE *)ctx) == len ? 0 : 1;
}

typedef struct {
    gen_t gen;
    uint64_t seen;
    int mismatch;
} compare_t;

static int compare(void *ctx, const uint8_t *data, size_t len) {
    compare_t *c = ctx;
    size_t i;
    for (i = 0; i < len; i++) {
        if (gen_next(&c->gen) != data[i]) {
            c->mismatch = 1;
        }
    }
    c->seen += len;
    return 0;
}

static int discard(void *ctx, const uint8_t *data, size_t len) {
    (void)ctx;
    (void)data;
    (void)len;
    return 0;
}

static int refuse(void *ctx, const uint8_t *data, size_t len) {
    (void)ctx;
    (void)data;
    (void)len;
    return 7;
}

/* A chunk table kept in memory through ota_table_io's callbacks, and an envelope read
   through ota_read_at_fn: what a device with no file system provides. */
typedef struct {
    uint8_t *data;
    size_t len;
    int writes;
} mem_table_t;

static int table_write(void *ctx, uint64_t offset, const uint8_t *data, size_t len) {
    mem_table_t *t = ctx;
    if (offset + len > t->len) {
        uint8_t *grown = realloc(t->data, (size_t)(offset + len));
        if (grown == NULL) {
            return 1;
        }
        memset(grown + t->len, 0, (size_t)(offset + len) - t->len);
        t->data = grown;
        t->len = (size_t)(offset + len);
    }
    memcpy(t->data + offset, data, len);
    t->writes++;
    return 0;
}

static int table_read(void *ctx, uint64_t offset, uint8_t *buf, size_t len) {
    mem_table_t *t = ctx;
    if (offset + len > t->len) {
        return 2;
    }
    memcpy(buf, t->data + offset, len);
    return 0;
}

static int envelope_read(void *ctx, uint64_t offset, uint8_t *buf, size_t len) {
    memcpy(buf, (const char *)ctx + offset, len);
    return 0;
}

static void keys(void) {
    ota_signing_key *k = NULL, *again = NULL;
    char pem[512], hex[80], id[80], id2[80];
    uint8_t der[128];
    size_t n = 0, der_n = 0;
    ota_trusted_keys *t = NULL;

    CHECK_STATUS(ota_signing_key_generate(&k), OTA_STATUS_OK);
    CHECK_STATUS(ota_signing_key_to_pem(k, pem, sizeof pem, &n), OTA_STATUS_OK);
    CHECK(strncmp(pem, "-----BEGIN PRIVATE KEY-----", 27) == 0);
    CHECK_STATUS(ota_signing_key_to_pem(k, pem, 10, &n), OTA_STATUS_INSUFFICIENT_SIZE);
    CHECK_STATUS(ota_signing_key_to_pem(k, pem, sizeof pem, &n), OTA_STATUS_OK);
    CHECK_STATUS(ota_signing_key_to_der(k, der, 4, &der_n), OTA_STATUS_INSUFFICIENT_SIZE);
    CHECK(der_n > 4 && der_n <= sizeof der);
    CHECK_STATUS(ota_signing_key_to_der(k, der, sizeof der, &der_n), OTA_STATUS_OK);
    CHECK_STATUS(ota_signing_key_public_key(k, hex, sizeof hex, &n), OTA_STATUS_OK);
    CHECK(n == 64);
    CHECK_STATUS(ota_signing_key_id(k, id, sizeof id, &n), OTA_STATUS_OK);
    CHECK(n == 64);

    /* PEM and DER load back to the same key. */
    CHECK_STATUS(ota_signing_key_load((const uint8_t *)pem, strlen(pem), &again), OTA_STATUS_OK);
    CHECK_STATUS(ota_signing_key_id(again, id2, sizeof id2, &n), OTA_STATUS_OK);
    CHECK(strcmp(id, id2) == 0);
    ota_signing_key_free(again);
    again = NULL;
    CHECK_STATUS(ota_signing_key_load(der, der_n, &again), OTA_STATUS_OK);
    ota_signing_key_free(again);
    again = NULL;
    CHECK_STATUS(ota_signing_key_load((const uint8_t *)"garbage", 7, &again), OTA_STATUS_INVALID_SIGNING_KEY);
    CHECK_STATUS(ota_signing_key_load(NULL, 7, &again), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_signing_key_load(der, der_n, NULL), OTA_STATUS_NULL_POINTER);
    CHECK(again == NULL);
    CHECK_STATUS(ota_signing_key_generate(NULL), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_signing_key_id(NULL, id, sizeof id, &n), OTA_STATUS_NULL_POINTER);

    CHECK_STATUS(ota_trusted_keys_new(&t), OTA_STATUS_OK);
    CHECK_STATUS(ota_trusted_keys_add(t, hex, 64), OTA_STATUS_OK);
    CHECK_STATUS(ota_trusted_keys_add(t, "abcd", 4), OTA_STATUS_INVALID_SIGNING_KEY);
    CHECK_STATUS(ota_trusted_keys_add(t, "\xff", 1), OTA_STATUS_INVALID_UTF8);
    CHECK_STATUS(ota_trusted_keys_add(NULL, hex, 64), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_trusted_keys_new(NULL), OTA_STATUS_NULL_POINTER);
    ota_trusted_keys_free(t);
    ota_trusted_keys_free(NULL);
    ota_signing_key_free(k);
    ota_signing_key_free(NULL);
}

/* Seals `megabytes` of the generated stream into `path`; returns the finished sealer. */
static ota_sealer *seal_file(const uint8_t key[32], const char *path, size_t megabytes, char *info, size_t info_len) {
    FILE *f = fopen(path, "wb");
    ota_sealer *s = NULL;
    gen_t g = {0x9e3779b97f4a7c15ull, 0};
    uint8_t *buf = malloc(1 << 20);
    size_t i, n = 0;
    CHECK(f != NULL && buf != NULL);
    CHECK_STATUS(ota_sealer_new(key, 32, to_file, f, &s), OTA_STATUS_OK);
    for (i = 0; i < megabytes; i++) {
        gen_fill(&g, buf, 1 << 20);
        /* Odd-sized writes. */
        CHECK_STATUS(ota_sealer_write(s, buf, 333333), OTA_STATUS_OK);
        CHECK_STATUS(ota_sealer_write(s, buf + 333333, (1 << 20) - 333333), OTA_STATUS_OK);
    }
    CHECK_STATUS(ota_sealer_finish(s, info, 8, &n), OTA_STATUS_INSUFFICIENT_SIZE);
    CHECK(n + 1 <= info_len);
    CHECK_STATUS(ota_sealer_finish(s, info, info_len, &n), OTA_STATUS_OK);
    CHECK_STATUS(ota_sealer_write(s, buf, 1), OTA_STATUS_INVALID_ARGUMENT);
    fclose(f);
    free(buf);
    return s;
}

/* Opens `path` with `opener`, feeding it in reads of `step` bytes; returns the last status. */
static ota_status open_file(ota_opener *o, const char *path, size_t step) {
    FILE *f = fopen(path, "rb");
    uint8_t *buf = malloc(step);
    size_t got;
    ota_status st = OTA_STATUS_OK;
    CHECK(f != NULL && buf != NULL);
    while (st == OTA_STATUS_OK && (got = fread(buf, 1, step, f)) > 0) {
        st = ota_opener_write(o, buf, got);
    }
    fclose(f);
    free(buf);
    return st;
}

/* Whether the file at `path` holds exactly `megabytes` of the generated stream. */
static int holds_the_stream(const char *path, size_t megabytes) {
    compare_t c = {{0x9e3779b97f4a7c15ull, 0}, 0, 0};
    FILE *f = fopen(path, "rb");
    uint8_t *buf = malloc(1 << 20);
    size_t got;
    CHECK(f != NULL && buf != NULL);
    while ((got = fread(buf, 1, 1 << 20, f)) > 0) {
        compare(&c, buf, got);
    }
    fclose(f);
    free(buf);
    return !c.mismatch && c.seen == (uint64_t)megabytes << 20;
}

/* ota_verified_package_open_file of `path` into `out_path` on `threads`, with a 32-byte key. */
static ota_status open_into(const ota_verified_package *vp, const uint8_t *key, const char *path,
                            const char *out_path, uint64_t threads) {
    return ota_verified_package_open_file(vp, key, 32, path, strlen(path), out_path, strlen(out_path),
                                          threads);
}

static void flip_byte(const char *path, long offset) {
    FILE *f = fopen(path, "r+b");
    int c;
    CHECK(f != NULL);
    fseek(f, offset, SEEK_SET);
    c = fgetc(f);
    fseek(f, offset, SEEK_SET);
    fputc(c ^ 0x20, f);
    fclose(f);
}

static void publish_and_open(const char *fixtures, const char *tmp, size_t megabytes) {
    uint8_t key[32], wrong[32];
    char path[4096], out_path[4096], info[1 << 16], envelope[1 << 17], buf[4096], pub[80], reg[2048];
    size_t n = 0, len = 0, env_n = 0;
    char *pkg_json = read_text(fixtures, "packages/valid/seed-004-firmware.json", &len);
    ota_package *pkg = NULL;
    ota_signing_key *signer = NULL, *stranger = NULL;
    ota_trusted_keys *trusted = NULL;
    ota_verified_package *vp = NULL;
    ota_opener *o = NULL;
    ota_sealer *s;
    compare_t cmp = {{0x9e3779b97f4a7c15ull, 0}, 0, 0};
    const ota_signing_key *signers[1];
    uint64_t threads;

    snprintf(path, sizeof path, "%s/artifact.enc", tmp);
    CHECK_STATUS(ota_seal_key_generate(key, 32), OTA_STATUS_OK);
    CHECK_STATUS(ota_seal_key_generate(key, 31), OTA_STATUS_INVALID_KEY);
    CHECK_STATUS(ota_seal_key_generate(NULL, 32), OTA_STATUS_NULL_POINTER);
    memcpy(wrong, key, 32);
    wrong[0] ^= 1;

    s = seal_file(key, path, megabytes, info, sizeof info);
    CHECK(strstr(info, "\"plaintext_size\"") != NULL);

    /* Describe, seal-bind, sign and verify the package. */
    CHECK_STATUS(ota_package_parse(pkg_json, len, &pkg), OTA_STATUS_OK);
    CHECK_STATUS(ota_signing_key_generate(&signer), OTA_STATUS_OK);
    CHECK_STATUS(ota_signing_key_generate(&stranger), OTA_STATUS_OK);
    signers[0] = signer;
    CHECK_STATUS(ota_envelope_sign(pkg, signers, 1, envelope, sizeof envelope, &env_n), OTA_STATUS_NOT_SEALED);
    CHECK_STATUS(ota_package_set_sealed(pkg, s), OTA_STATUS_OK);
    CHECK_STATUS(ota_envelope_sign(pkg, signers, 1, envelope, 16, &env_n), OTA_STATUS_INSUFFICIENT_SIZE);
    CHECK_STATUS(ota_envelope_sign(pkg, signers, 1, envelope, sizeof envelope, &env_n), OTA_STATUS_OK);
    CHECK_STATUS(ota_envelope_sign(pkg, NULL, 1, envelope, sizeof envelope, &env_n), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_envelope_sign(pkg, signers, 0, buf, sizeof buf, &n), OTA_STATUS_INVALID_ARGUMENT);

    CHECK_STATUS(ota_trusted_keys_new(&trusted), OTA_STATUS_OK);
    CHECK_STATUS(ota_signing_key_public_key(stranger, pub, sizeof pub, &n), OTA_STATUS_OK);
    CHECK_STATUS(ota_trusted_keys_add(trusted, pub, n), OTA_STATUS_OK);
    CHECK_STATUS(ota_envelope_verify(envelope, env_n, trusted, 1, &vp), OTA_STATUS_THRESHOLD_NOT_MET);
    CHECK(vp == NULL);
    CHECK_STATUS(ota_signing_key_public_key(signer, pub, sizeof pub, &n), OTA_STATUS_OK);
    CHECK_STATUS(ota_trusted_keys_add(trusted, pub, n), OTA_STATUS_OK);
    CHECK_STATUS(ota_envelope_verify(envelope, env_n, trusted, 2, &vp), OTA_STATUS_THRESHOLD_NOT_MET);
    CHECK_STATUS(ota_envelope_verify(envelope, env_n, trusted, 0, &vp), OTA_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ota_envelope_verify("{}", 2, trusted, 1, &vp), OTA_STATUS_ENVELOPE_INVALID);
    CHECK_STATUS(ota_envelope_verify(envelope, env_n, NULL, 1, &vp), OTA_STATUS_NULL_POINTER);
    {
        /* Change one character of the base64 payload: the signature no longer verifies. */
        char *edited = malloc(env_n + 1);
        char *p;
        memcpy(edited, envelope, env_n + 1);
        p = strstr(edited, "\"payload\":\"") + 20;
        *p = *p == 'A' ? 'B' : 'A';
        CHECK_STATUS(ota_envelope_verify(edited, env_n, trusted, 1, &vp), OTA_STATUS_SIGNATURE_INVALID);
        free(edited);
    }
    CHECK_STATUS(ota_envelope_verify(envelope, env_n, trusted, 1, &vp), OTA_STATUS_OK);
    CHECK_STATUS(ota_verified_package_to_json(vp, buf, 8, &n), OTA_STATUS_INSUFFICIENT_SIZE);
    {
        /* The same envelope verified from its file, streamed, its chunk table in a file:
           the same package, and the artifact opens against the stored digests. */
        char env_path[4096], table_path[4096], id_a[64], id_b[64];
        uint64_t chunks_a = 0, chunks_b = 0;
        ota_verified_package *streamed = NULL;
        compare_t cmp2 = {{0x9e3779b97f4a7c15ull, 0}, 0, 0};
        FILE *f;
        snprintf(env_path, sizeof env_path, "%s/envelope.json", tmp);
        snprintf(table_path, sizeof table_path, "%s/envelope.table", tmp);
        f = fopen(env_path, "wb");
        CHECK(f != NULL && fwrite(envelope, 1, env_n, f) == env_n);
        fclose(f);
        CHECK_STATUS(ota_envelope_verify_file(env_path, strlen(env_path), table_path, strlen(table_path),
                                              trusted, 1, &streamed), OTA_STATUS_OK);
        CHECK_STATUS(ota_verified_package_id(vp, id_a, sizeof id_a, &n), OTA_STATUS_OK);
        CHECK_STATUS(ota_verified_package_id(streamed, id_b, sizeof id_b, &n), OTA_STATUS_OK);
        CHECK(strcmp(id_a, id_b) == 0);
        CHECK_STATUS(ota_verified_package_chunk_count(vp, &chunks_a), OTA_STATUS_OK);
        CHECK_STATUS(ota_verified_package_chunk_count(streamed, &chunks_b), OTA_STATUS_OK);
        CHECK(chunks_a == chunks_b && chunks_a > 0);
        CHECK_STATUS(ota_opener_new(streamed, key, 32, compare, &cmp2, &o), OTA_STATUS_OK);
        CHECK_STATUS(open_file(o, path, 100003), OTA_STATUS_OK);
        CHECK_STATUS(ota_opener_finish(o, buf, sizeof buf, &n), OTA_STATUS_OK);
        CHECK(cmp2.seen == (uint64_t)megabytes << 20 && !cmp2.mismatch);
        ota_opener_free(o);
        o = NULL;
        ota_verified_package_free(streamed);
        streamed = NULL;
        CHECK_STATUS(ota_envelope_verify_file(env_path, strlen(env_path), table_path, strlen(table_path),
                                              trusted, 2, &streamed), OTA_STATUS_THRESHOLD_NOT_MET);
        CHECK(streamed == NULL);
        CHECK_STATUS(ota_envelope_verify_file("/nonexistent/envelope.json", 26, table_path, strlen(table_path),
                                              trusted, 1, &streamed), OTA_STATUS_IO);
        CHECK(strstr(last_error(), "envelope_path") != NULL);
        CHECK_STATUS(ota_envelope_verify_file(env_path, strlen(env_path), NULL, 3, trusted, 1, &streamed),
                     OTA_STATUS_NULL_POINTER);
        /* The table named as the envelope itself: refused, and the envelope still whole. */
        CHECK_STATUS(ota_envelope_verify_file(env_path, strlen(env_path), env_path, strlen(env_path),
                                              trusted, 1, &streamed), OTA_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(ota_envelope_verify_file(env_path, strlen(env_path), table_path, strlen(table_path),
                                              trusted, 1, &streamed), OTA_STATUS_OK);
        ota_verified_package_free(streamed);
        streamed = NULL;
        remove(env_path);
        remove(table_path);
    }
    {
        /* The same through callbacks: the envelope read from memory, the table kept in
           memory; the artifact opens against it, and a flipped table byte is found. */
        mem_table_t table = {NULL, 0, 0};
        ota_table_io io = {&table, table_write, table_read};
        ota_verified_package *cb = NULL;
        compare_t cmp3 = {{0x9e3779b97f4a7c15ull, 0}, 0, 0};
        uint64_t chunks = 0;
        CHECK_STATUS(ota_envelope_verify_io(env_n, envelope_read, envelope, &io, trusted, 1, &cb), OTA_STATUS_OK);
        CHECK_STATUS(ota_verified_package_chunk_count(cb, &chunks), OTA_STATUS_OK);
        CHECK(table.len == chunks * 32 && table.writes > 0);
        /* A table byte flipped before it is read: found, the open fails as I/O. Flipped
           back, the artifact opens (the block read last is kept, checked: a flip after it
           was read would go unseen, and change nothing). */
        table.data[5] ^= 1;
        CHECK_STATUS(ota_opener_new(cb, key, 32, discard, NULL, &o), OTA_STATUS_OK);
        CHECK_STATUS(open_file(o, path, 1 << 20), OTA_STATUS_IO);
        CHECK(strstr(last_error(), "changed since the statement was verified") != NULL);
        ota_opener_free(o);
        o = NULL;
        table.data[5] ^= 1;
        CHECK_STATUS(ota_opener_new(cb, key, 32, compare, &cmp3, &o), OTA_STATUS_OK);
        CHECK_STATUS(open_file(o, path, 100003), OTA_STATUS_OK);
        CHECK_STATUS(ota_opener_finish(o, buf, sizeof buf, &n), OTA_STATUS_OK);
        CHECK(cmp3.seen == (uint64_t)megabytes << 20 && !cmp3.mismatch);
        ota_opener_free(o);
        o = NULL;
        ota_verified_package_free(cb);
        cb = NULL;
        /* Unsigned: nothing is written to the table. A NULL callback is named. */
        table.writes = 0;
        CHECK_STATUS(ota_envelope_verify_io(env_n, envelope_read, envelope, &io, trusted, 2, &cb),
                     OTA_STATUS_THRESHOLD_NOT_MET);
        CHECK(cb == NULL && table.writes == 0);
        io.read = NULL;
        CHECK_STATUS(ota_envelope_verify_io(env_n, envelope_read, envelope, &io, trusted, 1, &cb),
                     OTA_STATUS_NULL_POINTER);
        CHECK(strstr(last_error(), "table->read") != NULL);
        CHECK_STATUS(ota_envelope_verify_io(env_n, NULL, envelope, &io, trusted, 1, &cb), OTA_STATUS_NULL_POINTER);
        free(table.data);
    }

    /* Handles of another type are refused by their tag: the unsigned package where the
       verified one belongs, a trusted-key set among the signers, a sealer as a package. */
    CHECK_STATUS(ota_opener_new((const ota_verified_package *)pkg, key, 32, discard, NULL, &o),
                 OTA_STATUS_WRONG_HANDLE);
    CHECK(o == NULL);
    CHECK(strstr(last_error(), "ota_package, not an ota_verified_package") != NULL);
    signers[0] = (const ota_signing_key *)trusted;
    CHECK_STATUS(ota_envelope_sign(pkg, signers, 1, buf, sizeof buf, &n), OTA_STATUS_WRONG_HANDLE);
    CHECK(strstr(last_error(), "`keys[0]`") != NULL);
    signers[0] = signer;
    CHECK_STATUS(ota_package_set_sealed((ota_package *)s, s), OTA_STATUS_WRONG_HANDLE);

    /* Open it in reads that do not line up with the 64 KiB chunks. */
    CHECK_STATUS(ota_opener_new(vp, key, 32, compare, &cmp, &o), OTA_STATUS_OK);
    CHECK_STATUS(open_file(o, path, 100003), OTA_STATUS_OK);
    CHECK_STATUS(ota_opener_finish(o, buf, sizeof buf, &n), OTA_STATUS_OK);
    CHECK(strstr(buf, "\"plaintext_size\":") != NULL);
    CHECK(cmp.seen == (uint64_t)megabytes << 20);
    CHECK(!cmp.mismatch);
    CHECK_STATUS(ota_opener_write(o, (const uint8_t *)"x", 1), OTA_STATUS_INVALID_ARGUMENT);
    ota_opener_free(o);
    o = NULL;

    /* A wrong key, a refusing callback, a NULL callback, a short key. */
    CHECK_STATUS(ota_opener_new(vp, wrong, 32, discard, NULL, &o), OTA_STATUS_OK);
    {
        ota_status st = open_file(o, path, 1 << 20);
        if (st == OTA_STATUS_OK) {
            st = ota_opener_finish(o, buf, sizeof buf, &n);
        }
        CHECK(st == OTA_STATUS_DECRYPTION_FAILED);
    }
    ota_opener_free(o);
    o = NULL;
    CHECK_STATUS(ota_opener_new(vp, key, 32, refuse, NULL, &o), OTA_STATUS_OK);
    CHECK_STATUS(open_file(o, path, 1 << 20), OTA_STATUS_IO);
    CHECK(strstr(last_error(), "callback returned 7") != NULL);
    CHECK_STATUS(ota_opener_finish(o, buf, sizeof buf, &n), OTA_STATUS_INVALID_ARGUMENT);
    ota_opener_free(o);
    o = NULL;
    CHECK_STATUS(ota_opener_new(vp, key, 32, NULL, NULL, &o), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_opener_new(vp, key, 16, discard, NULL, &o), OTA_STATUS_INVALID_KEY);
    CHECK_STATUS(ota_opener_new(NULL, key, 32, discard, NULL, &o), OTA_STATUS_NULL_POINTER);

    /* The artifact file opened into a file. Every thread count gives the same bytes:
     * tests/python/test_publisher.py opens on 0-3 and 16 threads and shows the count reaches
     * the pipeline. Here one count a run: the small run (under valgrind, which runs threads
     * one at a time, slowly) on one thread, the large one (under ASan) on this machine's
     * choice (0). A wrong key fails as the opener does, the output left whole; more than 16
     * threads is refused, naming them. */
    snprintf(out_path, sizeof out_path, "%s/plain-threads.bin", tmp);
    threads = megabytes <= 8 ? 1 : 0;
    {
        CHECK_STATUS(open_into(vp, key, path, out_path, threads), OTA_STATUS_OK);
        CHECK(holds_the_stream(out_path, megabytes));
        CHECK_STATUS(open_into(vp, wrong, path, out_path, threads), OTA_STATUS_DECRYPTION_FAILED);
        CHECK(holds_the_stream(out_path, megabytes));
        CHECK_STATUS(open_into(vp, key, path, out_path, 17), OTA_STATUS_INVALID_ARGUMENT);
        CHECK(strstr(last_error(), "threads") != NULL);
        CHECK_STATUS(open_into(vp, key, path, out_path, UINT64_MAX), OTA_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(open_into(vp, key, path, tmp, 1), OTA_STATUS_INVALID_ARGUMENT);
        CHECK(strstr(last_error(), "out_path") != NULL);
        CHECK_STATUS(ota_verified_package_open_file(vp, key, 16, path, strlen(path), out_path,
                                                    strlen(out_path), 1),
                     OTA_STATUS_INVALID_KEY);
        CHECK_STATUS(open_into(NULL, key, path, out_path, 1), OTA_STATUS_NULL_POINTER);
        CHECK_STATUS(open_into(vp, key, "/nonexistent", out_path, 1), OTA_STATUS_IO);
        /* The output stays for the flipped byte below. */
        CHECK(holds_the_stream(out_path, megabytes));
    }

    /* The registration record, and opening by it alone into a file. */
    {
        const char *params =
            "{\"resource_name\":\"my_model\",\"dev_stage\":\"dev\",\"architecture\":\"arm64\","
            "\"version\":\"2026-04-15\",\"s3_endpoint\":\"http://127.0.0.1:9000\",\"bucket\":\"artifacts\"}";
        CHECK_STATUS(ota_registration_build(s, key, 32, params, strlen(params), reg, sizeof reg, &n), OTA_STATUS_OK);
        CHECK(strstr(reg, "\"cdn_url\":\"http://127.0.0.1:9000/artifacts/dev/my_model-arm64-2026-04-15.enc\"") != NULL);
        CHECK_STATUS(ota_registration_object_key(reg, n, buf, sizeof buf, &n), OTA_STATUS_OK);
        CHECK(strcmp(buf, "dev/my_model-arm64-2026-04-15.enc") == 0);
        CHECK_STATUS(ota_registration_build(s, key, 32, "{\"x\":1}", 7, reg, sizeof reg, &n), OTA_STATUS_UNKNOWN_FIELD);
        CHECK_STATUS(ota_registration_build(s, key, 32, params, strlen(params), reg, sizeof reg, &n), OTA_STATUS_OK);
        snprintf(out_path, sizeof out_path, "%s/plain.bin", tmp);
        CHECK_STATUS(ota_registration_open_file(reg, strlen(reg), path, strlen(path),
                                                out_path, strlen(out_path), (uint64_t)megabytes << 20),
                     OTA_STATUS_OK);
        CHECK(access(out_path, F_OK) == 0);
        remove(out_path);
        /* A bound below the plaintext: no output file is left behind. */
        CHECK_STATUS(ota_registration_open_file(reg, strlen(reg), path, strlen(path),
                                                out_path, strlen(out_path), 1000),
                     OTA_STATUS_PLAINTEXT_TOO_LARGE);
        CHECK(access(out_path, F_OK) != 0);
        CHECK_STATUS(ota_registration_open_file(reg, strlen(reg), "/nonexistent", 12,
                                                out_path, strlen(out_path), 1000),
                     OTA_STATUS_IO);
    }

    /* A flipped byte in the second chunk is caught before it is decrypted. */
    flip_byte(path, 70000);
    CHECK_STATUS(ota_opener_new(vp, key, 32, discard, NULL, &o), OTA_STATUS_OK);
    CHECK_STATUS(open_file(o, path, 65536), OTA_STATUS_CHUNK_DIGEST_MISMATCH);
    CHECK(strstr(last_error(), "chunk 1 ") != NULL);
    ota_opener_free(o);
    o = NULL;
    CHECK_STATUS(ota_registration_open_file(reg, strlen(reg), path, strlen(path),
                                            out_path, strlen(out_path), (uint64_t)megabytes << 20),
                 OTA_STATUS_DIGEST_MISMATCH);
    CHECK(access(out_path, F_OK) != 0);
    /* Opened into a file: refused, the previous output left whole. */
    snprintf(out_path, sizeof out_path, "%s/plain-threads.bin", tmp);
    CHECK_STATUS(open_into(vp, key, path, out_path, threads), OTA_STATUS_CHUNK_DIGEST_MISMATCH);
    CHECK(strstr(last_error(), "chunk 1 ") != NULL);
    CHECK(holds_the_stream(out_path, megabytes));
    remove(out_path);

    /* Truncated: the opener says so at the end. */
    CHECK_STATUS(ota_opener_new(vp, key, 32, discard, NULL, &o), OTA_STATUS_OK);
    CHECK_STATUS(ota_opener_write(o, (const uint8_t *)"0123456789abcdef", 16), OTA_STATUS_OK);
    CHECK_STATUS(ota_opener_finish(o, buf, sizeof buf, &n), OTA_STATUS_TRUNCATED);
    ota_opener_free(o);
    ota_opener_free(NULL);

    /* A sealer with a NULL callback, a reproducible sealer with a wrong digest. */
    {
        ota_sealer *bad = NULL;
        uint8_t digest[32] = {0};
        CHECK_STATUS(ota_sealer_new(key, 32, NULL, NULL, &bad), OTA_STATUS_NULL_POINTER);
        CHECK_STATUS(ota_sealer_new(key, 33, discard, NULL, &bad), OTA_STATUS_INVALID_KEY);
        CHECK_STATUS(ota_sealer_new_reproducible(key, 32, digest, 31, discard, NULL, &bad), OTA_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(ota_sealer_new_reproducible(key, 32, digest, 32, discard, NULL, &bad), OTA_STATUS_OK);
        CHECK_STATUS(ota_package_set_sealed(pkg, bad), OTA_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(ota_sealer_write(bad, (const uint8_t *)"hello", 5), OTA_STATUS_OK);
        CHECK_STATUS(ota_sealer_finish(bad, buf, sizeof buf, &n), OTA_STATUS_PLAINTEXT_MISMATCH);
        ota_sealer_free(bad);
        bad = NULL;
        CHECK_STATUS(ota_sealer_new(key, 32, refuse, NULL, &bad), OTA_STATUS_IO);
        CHECK(bad == NULL);
    }

    ota_sealer_free(s);
    ota_sealer_free(NULL);
    ota_verified_package_free(vp);
    ota_verified_package_free(NULL);
    ota_trusted_keys_free(trusted);
    ota_signing_key_free(signer);
    ota_signing_key_free(stranger);
    ota_package_free(pkg);
    free(pkg_json);
    remove(path);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s FIXTURES_DIR TMP_DIR MEGABYTES\n", argv[0]);
        return 2;
    }
    keys();
    publish_and_open(argv[1], argv[2], (size_t)atoi(argv[3]));
    return check_summary("publisher");
}
