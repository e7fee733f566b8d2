/* Verifies a signed package and prints what a device or a control plane needs of it,
 * through the accessors (no JSON parsing): its id, name, version, SHA-256, size and chunk
 * count; and the library's version and features.
 *
 * Usage: verify TRUSTED_KEY ENVELOPE
 *   TRUSTED_KEY: a file holding the publisher's public key (64 hex digits, or PEM)
 *   ENVELOPE:    a file holding the package's DSSE envelope (JSON)
 *
 * Build against an installed libota (cargo xtask install --prefix PREFIX):
 *   make PKG_CONFIG_PATH=PREFIX/lib/pkgconfig
 *   cmake -S . -B build -DCMAKE_PREFIX_PATH=PREFIX && cmake --build build */
#include <ota.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads a whole file; the caller frees it. */
static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    long n;
    if (!f) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        data = malloc((size_t)n + 1);
        if (data && fread(data, 1, (size_t)n, f) == (size_t)n) {
            data[n] = '\0';
            *len = (size_t)n;
        } else {
            free(data);
            data = NULL;
        }
    }
    fclose(f);
    return data;
}

static int fail(const char *what, ota_status s) {
    char msg[1024];
    size_t n = 0;
    ota_last_error_message(msg, sizeof msg, &n);
    fprintf(stderr, "%s: %s: %s\n", what, ota_status_name(s), msg);
    return 1;
}

int main(int argc, char **argv) {
    size_t key_len = 0, env_len = 0, n = 0;
    char *key, *env;
    char text[256];
    uint64_t size = 0, chunks = 0;
    ota_trusted_keys *trusted = NULL;
    ota_verified_package *pkg = NULL;
    ota_report_status report = OTA_REPORT_STATUS_IN_PROGRESS;
    static const char report_json[] =
        "{\"device_id\": \"dev-0001\", \"status\": \"success\", \"firmware_version\": \"2.0.0\"}";
    ota_status s;
    int rc = 1;

    if (argc != 3) {
        fprintf(stderr, "usage: %s TRUSTED_KEY ENVELOPE\n", argv[0]);
        return 64;
    }
    /* The header this program was compiled with, and the library it runs with. */
    printf("ota %s (built against %s), tuf: %s, probe runners: %s\n", ota_version(),
           OTA_VERSION_STRING, OTA_HAS_TUF ? "yes" : "no", OTA_HAS_PROBE_RUNNERS ? "yes" : "no");
    if (strcmp(ota_version(), OTA_VERSION_STRING) != 0) {
        fprintf(stderr, "libota %s does not match its header %s\n", ota_version(), OTA_VERSION_STRING);
        return 1;
    }
#if OTA_HAS_TUF
    ota_tuf_client_free(NULL); /* exported by this build: links */
#endif
#if OTA_HAS_PROBE_RUNNERS
    /* Exported by this build: links, and answers (here: that `healthy_out` is NULL). */
    printf("probe runner: %s\n",
           ota_probe_run(NULL, 0, NULL, 0, 0, NULL, NULL, 0, NULL) == OTA_STATUS_NULL_POINTER
               ? "linked" : "wrong answer");
#endif

    key = slurp(argv[1], &key_len);
    env = slurp(argv[2], &env_len);
    if (!key || !env) {
        fprintf(stderr, "cannot read %s or %s\n", argv[1], argv[2]);
        goto out;
    }
    while (key_len > 0 && (key[key_len - 1] == '\n' || key[key_len - 1] == '\r')) {
        key_len--;
    }
    if ((s = ota_trusted_keys_new(&trusted)) != OTA_STATUS_OK ||
        (s = ota_trusted_keys_add(trusted, key, key_len)) != OTA_STATUS_OK) {
        rc = fail("trusted key", s);
        goto out;
    }
    if ((s = ota_envelope_verify(env, env_len, trusted, 1, &pkg)) != OTA_STATUS_OK) {
        rc = fail("verify", s);
        goto out;
    }
    if ((s = ota_verified_package_id(pkg, text, sizeof text, &n)) != OTA_STATUS_OK) {
        rc = fail("id", s);
        goto out;
    }
    printf("id: %s\n", text);
    if ((s = ota_verified_package_name(pkg, text, sizeof text, &n)) != OTA_STATUS_OK) {
        rc = fail("name", s);
        goto out;
    }
    printf("name: %s\n", text);
    if ((s = ota_verified_package_version(pkg, text, sizeof text, &n)) != OTA_STATUS_OK) {
        rc = fail("version", s);
        goto out;
    }
    printf("version: %s\n", text);
    if ((s = ota_verified_package_sha256(pkg, text, sizeof text, &n)) != OTA_STATUS_OK) {
        rc = fail("sha256", s);
        goto out;
    }
    printf("sha256: %s\n", text);
    if ((s = ota_verified_package_size(pkg, &size)) != OTA_STATUS_OK ||
        (s = ota_verified_package_chunk_count(pkg, &chunks)) != OTA_STATUS_OK) {
        rc = fail("size", s);
        goto out;
    }
    printf("size: %llu\nchunks: %llu\n", (unsigned long long)size, (unsigned long long)chunks);
    if ((s = ota_report_parse_status(report_json, strlen(report_json), &report)) != OTA_STATUS_OK) {
        rc = fail("report", s);
        goto out;
    }
    printf("report: %s\n", report == OTA_REPORT_STATUS_SUCCESS ? "success" : "other");
    rc = 0;
out:
    ota_verified_package_free(pkg);
    ota_trusted_keys_free(trusted);
    free(key);
    free(env);
    return rc;
}
