/* A C client of the foundation API: version and status strings, manifest, package and
 * profile parsing, the compatibility check per device and per fleet, and SBOM validation.
 * Each call is exercised on success, bad JSON, NULL pointers, invalid UTF-8 and a buffer that
 * is too small. Usage: foundation FIXTURES_DIR */
#include "check.h"

static void versions_and_statuses(void) {
    CHECK(strcmp(ota_version(), "0.1.0") == 0);
    CHECK(strcmp(ota_status_name(OTA_STATUS_OK), "ok") == 0);
    CHECK(strcmp(ota_status_name(OTA_STATUS_INSUFFICIENT_SIZE), "insufficient_size") == 0);
    CHECK(strcmp(ota_status_message(OTA_STATUS_NULL_POINTER), "a required pointer argument was null") == 0);
    CHECK(ota_status_name(999999) == NULL);
    CHECK(strcmp(ota_status_message(999999), "unknown status") == 0);
    CHECK(OTA_STATUS_INVALID == 105);
}

static void last_error_buffer(void) {
    ota_manifest *m = NULL;
    size_t n = 0;
    char tiny[4];
    CHECK_STATUS(ota_manifest_parse("{", 1, &m), OTA_STATUS_JSON_SYNTAX);
    /* Query the size with a NULL buffer, then with one too small, then read it. */
    CHECK_STATUS(ota_last_error_message(NULL, 0, &n), OTA_STATUS_INSUFFICIENT_SIZE);
    CHECK(n > 10);
    CHECK_STATUS(ota_last_error_message(tiny, sizeof tiny, &n), OTA_STATUS_INSUFFICIENT_SIZE);
    CHECK(strstr(last_error(), "manifest") != NULL);
    CHECK_STATUS(ota_last_error_message(tiny, sizeof tiny, NULL), OTA_STATUS_NULL_POINTER);
    /* A successful call clears it. */
    CHECK_STATUS(ota_status_name(0) ? OTA_STATUS_OK : OTA_STATUS_PANIC, OTA_STATUS_OK);
}

static void manifests(const char *dir) {
    size_t len = 0, n = 0;
    char *json = read_text(dir, "manifests/valid/tensorrt-orin-nx.json", &len);
    char *bad = read_text(dir, "manifests/invalid/io-dimension-below-minus-one.json", &len);
    ota_manifest *m = NULL;
    char *out;
    size_t json_len = strlen((const char *)json);

    CHECK_STATUS(ota_manifest_parse(json, json_len, &m), OTA_STATUS_OK);
    CHECK(m != NULL);
    CHECK(strlen(last_error()) == 0);

    /* Size query, too small, exact. */
    CHECK_STATUS(ota_manifest_to_json(m, NULL, 0, &n), OTA_STATUS_INSUFFICIENT_SIZE);
    out = malloc(n + 1);
    CHECK_STATUS(ota_manifest_to_json(m, out, n, &n), OTA_STATUS_INSUFFICIENT_SIZE);
    CHECK_STATUS(ota_manifest_to_json(m, out, n + 1, &n), OTA_STATUS_OK);
    CHECK(strlen(out) == n);
    CHECK(strstr(out, "\"name\":\"yolo-v8n\"") != NULL);
    {
        /* What it wrote parses again. */
        ota_manifest *again = NULL;
        CHECK_STATUS(ota_manifest_parse(out, n, &again), OTA_STATUS_OK);
        ota_manifest_free(again);
    }
    free(out);

    /* Failures: a rule broken, bad JSON, invalid UTF-8, NULL pointers. */
    {
        ota_manifest *none = NULL;
        CHECK_STATUS(ota_manifest_parse(bad, strlen((const char *)bad), &none), OTA_STATUS_INVALID);
        CHECK(none == NULL);
        CHECK(strstr(last_error(), "io.outputs[0].shape[1]") != NULL);
        CHECK_STATUS(ota_manifest_parse("{\"name\":", 8, &none), OTA_STATUS_JSON_SYNTAX);
        CHECK_STATUS(ota_manifest_parse("[1]", 3, &none), OTA_STATUS_INVALID_VALUE);
        CHECK_STATUS(ota_manifest_parse("{\"name\":\"\xff\"}", 12, &none), OTA_STATUS_INVALID_UTF8);
        CHECK_STATUS(ota_manifest_parse(NULL, 10, &none), OTA_STATUS_NULL_POINTER);
        CHECK_STATUS(ota_manifest_parse(NULL, 0, &none), OTA_STATUS_JSON_SYNTAX);
        CHECK_STATUS(ota_manifest_parse(json, json_len, NULL), OTA_STATUS_NULL_POINTER);
        CHECK_STATUS(ota_manifest_to_json(NULL, NULL, 0, &n), OTA_STATUS_NULL_POINTER);
        CHECK_STATUS(ota_manifest_to_json(m, NULL, 0, NULL), OTA_STATUS_NULL_POINTER);
        CHECK(none == NULL);
    }
    ota_manifest_free(m);
    ota_manifest_free(NULL);
    free(json);
    free(bad);
}

static ota_package *load_package(const char *dir, const char *name) {
    size_t len = 0;
    char *json = read_text(dir, name, &len);
    ota_package *p = NULL;
    CHECK_STATUS(ota_package_parse(json, len, &p), OTA_STATUS_OK);
    free(json);
    return p;
}

static ota_profile *load_profile(const char *dir, const char *name) {
    size_t len = 0;
    char *json = read_text(dir, name, &len);
    ota_profile *p = NULL;
    CHECK_STATUS(ota_profile_parse(json, len, &p), OTA_STATUS_OK);
    free(json);
    return p;
}

static void packages_and_profiles(const char *dir) {
    size_t len = 0, n = 0;
    char buf[8192];
    char *tag = read_text(dir, "packages/invalid/registry-tag-only.json", &len);
    char *widen = read_text(dir, "profiles/invalid/widens-memory.json", &len);
    ota_package *p = load_package(dir, "packages/valid/seed-004-firmware.json");
    ota_profile *d = load_profile(dir, "profiles/valid/orin-nx-line-camera.json");
    ota_package *none_p = NULL;
    ota_profile *none_d = NULL;

    CHECK_STATUS(ota_package_to_json(p, buf, sizeof buf, &n), OTA_STATUS_OK);
    CHECK(strstr(buf, "\"type\":\"fw\"") != NULL);
    CHECK_STATUS(ota_package_to_json(p, buf, 8, &n), OTA_STATUS_INSUFFICIENT_SIZE);
    CHECK(n > 8);
    CHECK_STATUS(ota_profile_to_json(d, buf, sizeof buf, &n), OTA_STATUS_OK);
    CHECK(strstr(buf, "jetson-line7-01") != NULL);
    CHECK_STATUS(ota_profile_to_json(d, buf, 8, &n), OTA_STATUS_INSUFFICIENT_SIZE);

    CHECK_STATUS(ota_package_parse(tag, strlen((const char *)tag), &none_p), OTA_STATUS_INVALID_VALUE);
    CHECK(strstr(last_error(), "pin the digest") != NULL);
    CHECK_STATUS(ota_profile_parse(widen, strlen((const char *)widen), &none_d), OTA_STATUS_INVALID);
    CHECK(strstr(last_error(), "memory_mb") != NULL);
    CHECK_STATUS(ota_package_parse("\xc3", 1, &none_p), OTA_STATUS_INVALID_UTF8);
    CHECK_STATUS(ota_profile_parse("\xc3", 1, &none_d), OTA_STATUS_INVALID_UTF8);
    CHECK_STATUS(ota_package_parse("{}", 2, &none_p), OTA_STATUS_MISSING_FIELD);
    CHECK_STATUS(ota_profile_parse("{\"x\":1}", 7, &none_d), OTA_STATUS_UNKNOWN_FIELD);
    CHECK_STATUS(ota_package_parse(NULL, 5, &none_p), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_profile_parse(NULL, 5, &none_d), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_package_parse("{}", 2, NULL), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_profile_parse("{}", 2, NULL), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_package_to_json(NULL, buf, sizeof buf, &n), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_profile_to_json(NULL, buf, sizeof buf, &n), OTA_STATUS_NULL_POINTER);
    CHECK(none_p == NULL && none_d == NULL);

    ota_package_free(p);
    ota_profile_free(d);
    ota_package_free(NULL);
    ota_profile_free(NULL);
    free(tag);
    free(widen);
}

static void compatibility(const char *dir) {
    size_t n = 0, len = 0;
    char buf[8192];
    bool ok = false;
    ota_package *yolo = load_package(dir, "packages/valid/model-tensorrt-orin-nx.json");
    ota_profile *orin = load_profile(dir, "profiles/valid/orin-nx-line-camera.json");
    ota_profile *xavier = load_profile(dir, "profiles/valid/xavier-nx-one-dla.json");
    char *widen = read_text(dir, "profiles/invalid/widens-memory.json", &len);
    char fleet[16384];

    CHECK_STATUS(ota_compat_check(yolo, orin, buf, sizeof buf, &n, &ok), OTA_STATUS_OK);
    CHECK(ok);
    CHECK(strstr(buf, "\"compatible\":true") != NULL);

    ok = true;
    CHECK_STATUS(ota_compat_check(yolo, xavier, buf, sizeof buf, &n, &ok), OTA_STATUS_OK);
    CHECK(!ok);
    CHECK(strstr(buf, "\"reason\":\"no_matching_target\"") != NULL);

    /* Too small: compatible_out stays untouched. */
    ok = true;
    CHECK_STATUS(ota_compat_check(yolo, xavier, buf, 16, &n, &ok), OTA_STATUS_INSUFFICIENT_SIZE);
    CHECK(ok);
    CHECK(n > 16);
    CHECK_STATUS(ota_compat_check(NULL, xavier, buf, sizeof buf, &n, &ok), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_compat_check(yolo, NULL, buf, sizeof buf, &n, &ok), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_compat_check(yolo, orin, buf, sizeof buf, &n, NULL), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_compat_check(yolo, orin, buf, sizeof buf, NULL, &ok), OTA_STATUS_NULL_POINTER);

    /* A handle of another type is refused by its tag, not read: a profile where the package
       belongs, the two swapped, a package given to a profile's _to_json and _free. */
    CHECK_STATUS(ota_compat_check((const ota_package *)orin, xavier, buf, sizeof buf, &n, &ok),
                 OTA_STATUS_WRONG_HANDLE);
    CHECK(strstr(last_error(), "ota_profile") != NULL && strstr(last_error(), "ota_package") != NULL);
    CHECK_STATUS(ota_compat_check((const ota_package *)orin, (const ota_profile *)yolo, buf, sizeof buf, &n, &ok),
                 OTA_STATUS_WRONG_HANDLE);
    CHECK_STATUS(ota_profile_to_json((const ota_profile *)yolo, buf, sizeof buf, &n), OTA_STATUS_WRONG_HANDLE);
    ota_profile_free((ota_profile *)yolo); /* refused: yolo stays live */
    CHECK(strstr(last_error(), "not freed") != NULL);
    CHECK_STATUS(ota_package_to_json(yolo, buf, sizeof buf, &n), OTA_STATUS_OK);

    /* A fleet of two: the Orin fits, the Xavier does not. */
    {
        char orin_json[4096], xavier_json[4096];
        size_t a = 0, b = 0;
        CHECK_STATUS(ota_profile_to_json(orin, orin_json, sizeof orin_json, &a), OTA_STATUS_OK);
        CHECK_STATUS(ota_profile_to_json(xavier, xavier_json, sizeof xavier_json, &b), OTA_STATUS_OK);
        snprintf(fleet, sizeof fleet, "[%s,%s]", orin_json, xavier_json);
    }
    CHECK_STATUS(ota_compat_check_fleet(yolo, fleet, strlen(fleet), buf, sizeof buf, &n), OTA_STATUS_OK);
    CHECK(strstr(buf, "\"eligible\":[\"jetson-line7-01\"]") != NULL);
    CHECK(strstr(buf, "\"no_matching_target\":1") != NULL);
    CHECK_STATUS(ota_compat_check_fleet(yolo, fleet, strlen(fleet), buf, 4, &n), OTA_STATUS_INSUFFICIENT_SIZE);
    snprintf(fleet, sizeof fleet, "[%s]", (const char *)widen);
    CHECK_STATUS(ota_compat_check_fleet(yolo, fleet, strlen(fleet), buf, sizeof buf, &n), OTA_STATUS_INVALID);
    CHECK(strstr(last_error(), "[0].memory_mb") != NULL);
    CHECK_STATUS(ota_compat_check_fleet(yolo, "[\xff]", 3, buf, sizeof buf, &n), OTA_STATUS_INVALID_UTF8);
    CHECK_STATUS(ota_compat_check_fleet(yolo, "[", 1, buf, sizeof buf, &n), OTA_STATUS_JSON_SYNTAX);
    CHECK_STATUS(ota_compat_check_fleet(NULL, "[]", 2, buf, sizeof buf, &n), OTA_STATUS_NULL_POINTER);
    CHECK_STATUS(ota_compat_check_fleet(yolo, NULL, 2, buf, sizeof buf, &n), OTA_STATUS_NULL_POINTER);

    ota_package_free(yolo);
    ota_profile_free(orin);
    ota_profile_free(xavier);
    free(widen);
}

static void sboms(const char *dir) {
    size_t n = 0, len = 0;
    char buf[1024];
    char *spdx = read_text(dir, "sbom/valid-spdx-2.3.json", &len);
    size_t spdx_len = len;
    char *bad = read_text(dir, "sbom/invalid-cyclonedx-bad-hash.json", &len);
    size_t bad_len = len;
    const char *spdx_fmt = "spdx-2.3", *cdx_fmt = "cyclonedx-1.5";

    CHECK_STATUS(ota_sbom_validate(spdx_fmt, strlen(spdx_fmt), spdx, spdx_len, buf, sizeof buf, &n), OTA_STATUS_OK);
    CHECK(strstr(buf, "\"components\":2") != NULL);
    CHECK_STATUS(ota_sbom_validate(cdx_fmt, strlen(cdx_fmt), bad, bad_len, buf, sizeof buf, &n), OTA_STATUS_INVALID);
    CHECK(strstr(last_error(), "components[0].hashes[0].content") != NULL);
    CHECK_STATUS(ota_sbom_validate("spdx", 4, spdx, spdx_len, buf, sizeof buf, &n), OTA_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ota_sbom_validate(spdx_fmt, strlen(spdx_fmt), spdx, spdx_len, buf, 2, &n), OTA_STATUS_INSUFFICIENT_SIZE);
    CHECK_STATUS(ota_sbom_validate("\xff", 1, spdx, spdx_len, buf, sizeof buf, &n), OTA_STATUS_INVALID_UTF8);
    CHECK_STATUS(ota_sbom_validate(NULL, 3, spdx, spdx_len, buf, sizeof buf, &n), OTA_STATUS_NULL_POINTER);
    free(spdx);
    free(bad);
}

/* A length no object can have (above PTRDIFF_MAX) is refused with a status naming it; it
 * used to abort the process. */
static void impossible_lengths(void) {
    ota_package *p = NULL;
    CHECK_STATUS(ota_package_parse("{}", SIZE_MAX, &p), OTA_STATUS_INVALID_ARGUMENT);
    CHECK(p == NULL);
    CHECK(strstr(last_error(), "json_len") != NULL);
    CHECK_STATUS(ota_package_parse("{}", (size_t)PTRDIFF_MAX + 1, &p), OTA_STATUS_INVALID_ARGUMENT);
    CHECK(p == NULL);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    versions_and_statuses();
    last_error_buffer();
    manifests(argv[1]);
    packages_and_profiles(argv[1]);
    compatibility(argv[1]);
    sboms(argv[1]);
    impossible_lengths();
    return check_summary("foundation");
}
