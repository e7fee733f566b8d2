/* A TUF client in C: refresh a repository (with a root rotation) from a trusted root, resolve a
 * target to a verified package, download it (to a file, and through a callback), read the
 * Trust Center; a write callback that refuses the bytes (an I/O error, not a fetch error); then
 * two attacks: a target whose bytes were changed, and a rollback of the timestamp. Usage: tuf FIXTURES_TUF_DIR WORK_DIR
 * (WORK_DIR/rollback-state holds a copy of rollback-timestamp/trusted.) */
#include "check.h"

#include <stdint.h>
#include <sys/stat.h>

static const uint64_t NOW = 1776238357000ull;

static ota_tuf_client *client_for(const char *fixtures, const char *name, const char *state) {
    char dir[4096], meta[4200], targets[4200];
    char *root;
    size_t root_len = 0;
    ota_tuf_client *c = NULL;
    snprintf(dir, sizeof dir, "%s/%s", fixtures, name);
    snprintf(meta, sizeof meta, "%s/repo/metadata", dir);
    snprintf(targets, sizeof targets, "%s/repo/targets", dir);
    root = read_text(dir, "trusted/root.json", &root_len);
    CHECK_STATUS(ota_tuf_client_new(root, root_len, meta, strlen(meta), targets,
                                    strlen(targets), state, strlen(state), &c),
                 OTA_STATUS_OK);
    free(root);
    return c;
}

static int count_bytes(void *ctx, const uint8_t *data, size_t len) {
    (void)data;
    *(uint64_t *)ctx += len;
    return 0;
}

static int refuse_bytes(void *ctx, const uint8_t *data, size_t len) {
    (void)ctx;
    (void)data;
    (void)len;
    return 1;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int main(int argc, char **argv) {
    const char *fixtures, *work;
    char state[4096], out[4096], rollback_state[4096];
    ota_tuf_client *c;
    ota_tuf_repo *repo = NULL;
    ota_verified_package *pkg = NULL;
    uint64_t length = 0, written = 0;
    char json[65536];
    size_t n = 0;
    unsigned char *before, *after;
    size_t before_len = 0, after_len = 0;
    if (argc != 3) {
        fprintf(stderr, "usage: tuf FIXTURES_TUF_DIR WORK_DIR\n");
        return 2;
    }
    fixtures = argv[1];
    work = argv[2];

    /* The happy path, through a root rotation (version 1 trusted, version 2 served). */
    snprintf(state, sizeof state, "%s/state", work);
    c = client_for(fixtures, "rotation-good", state);
    CHECK_STATUS(ota_tuf_client_set_progress_timeout(c, 0), OTA_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(last_error(), "timeout_ms") != NULL);
    CHECK_STATUS(ota_tuf_client_set_progress_timeout(c, 5000), OTA_STATUS_OK);
    CHECK_STATUS(ota_tuf_client_set_progress_timeout(NULL, 5000), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_tuf_refresh(c, NOW, &repo), OTA_STATUS_OK);
    CHECK(file_exists(state) && repo != NULL);
    CHECK_STATUS(ota_tuf_resolve(repo, "fw.enc", 6, &pkg, &length), OTA_STATUS_OK);
    CHECK(length > 6000);
    CHECK_STATUS(ota_verified_package_to_json(pkg, json, sizeof json, &n), OTA_STATUS_OK);
    CHECK(strstr(json, "\"id\":\"pkg_") != NULL);
    CHECK(strstr(json, "\"name\":\"temp-sensor-fw\"") != NULL);
    snprintf(out, sizeof out, "%s/fw.enc", work);
    CHECK_STATUS(ota_tuf_download_file(repo, "fw.enc", 6, out, strlen(out)),
                 OTA_STATUS_OK);
    {
        size_t got = 0;
        unsigned char *bytes = read_file(work, "fw.enc", &got);
        CHECK(got == length);
        free(bytes);
    }
    {
        uint64_t counted = 0;
        CHECK_STATUS(ota_tuf_download(repo, "fw.enc", 6, count_bytes, &counted, &written),
                     OTA_STATUS_OK);
        CHECK(counted == length && written == length);
    }
    /* A write callback that refuses the bytes stops the download with an I/O error. */
    CHECK_STATUS(ota_tuf_download(repo, "fw.enc", 6, refuse_bytes, NULL, &written),
                 OTA_STATUS_IO);
    CHECK(strstr(last_error(), "writing target fw.enc") != NULL);
    CHECK_STATUS(ota_tuf_trust_center(repo, json, sizeof json, &n), OTA_STATUS_OK);
    CHECK(strstr(json, "\"role\":\"root\",\"version\":2") != NULL);
    CHECK(strstr(json, "\"name\":\"fw.enc\"") != NULL);
    CHECK_STATUS(ota_tuf_resolve(repo, "../../etc/passwd", 16, &pkg, &length),
                 OTA_STATUS_TUF_UNSAFE_TARGET_NAME);
    CHECK_STATUS(ota_tuf_resolve(repo, "nope", 4, &pkg, &length), OTA_STATUS_TUF_TARGET_NOT_FOUND);
    CHECK_STATUS(ota_tuf_refresh(c, NOW + 400ull * 86400000ull, &repo), OTA_STATUS_TUF_EXPIRED);
    ota_verified_package_free(pkg);
    ota_tuf_repo_free(repo);
    ota_tuf_client_free(c);

    /* A target whose bytes were changed: the metadata is fine, the download is refused and
     * leaves no file. */
    repo = NULL;
    snprintf(state, sizeof state, "%s/state-bytes", work);
    c = client_for(fixtures, "target-bytes", state);
    CHECK_STATUS(ota_tuf_refresh(c, NOW, &repo), OTA_STATUS_OK);
    snprintf(out, sizeof out, "%s/bad.enc", work);
    CHECK_STATUS(ota_tuf_download_file(repo, "fw.enc", 6, out, strlen(out)),
                 OTA_STATUS_TUF_TARGET_MISMATCH);
    CHECK(strstr(last_error(), "fw.enc") != NULL);
    CHECK(!file_exists(out));
    ota_tuf_repo_free(repo);
    ota_tuf_client_free(c);

    /* A rollback of the timestamp: refused, and the trusted state is as it was. */
    repo = NULL;
    snprintf(rollback_state, sizeof rollback_state, "%s/rollback-state", work);
    before = read_file(rollback_state, "timestamp.json", &before_len);
    c = client_for(fixtures, "rollback-timestamp", rollback_state);
    CHECK_STATUS(ota_tuf_refresh(c, NOW, &repo), OTA_STATUS_TUF_ROLLBACK);
    CHECK(repo == NULL);
    CHECK(strstr(last_error(), "timestamp v2") != NULL);
    after = read_file(rollback_state, "timestamp.json", &after_len);
    CHECK(before_len == after_len && memcmp(before, after, before_len) == 0);
    free(before);
    free(after);
    ota_tuf_client_free(c);

    CHECK_STATUS(ota_tuf_refresh(NULL, NOW, &repo), OTA_STATUS_NULL_POINTER);
    ota_tuf_repo_free(NULL);
    ota_tuf_client_free(NULL);
    return check_summary("tuf");
}
