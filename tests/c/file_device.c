/* The reference file-backed device (ota_file_device) under an agent, from C: an update to
 * 2.0.0 with a power cut mid-download (the agent resumes from the record the device
 * persisted), committed after a healthy probe; then 2.1.0, whose probe fails, rolled back to
 * 2.0.0. The installed slot files, the idempotent swap and restore, and the reports' status
 * (read with ota_report_parse_status, not scraped) are checked.
 * Usage: file_device FIXTURES STATE  (FIXTURES as the agent client's; STATE: an empty dir) */
#include "check.h"

#include <stdint.h>

static const char *fixtures;
static uint64_t now = 1700000000000ull;
static ota_report_status last_status = 0;
static int reports = 0;

static ota_file_device *open_device(const char *state) {
    ota_file_device *dev = NULL;
    CHECK_STATUS(ota_file_device_open(state, strlen(state), "firmware.bin", 12, &dev), OTA_STATUS_OK);
    return dev;
}

/* Boots: the agent from the record the device persisted (none on the first boot). */
static ota_agent *boot(ota_file_device *dev) {
    static char record[1 << 16];
    size_t rn = 0, len = 0;
    ota_device_io io;
    ota_agent *agent = NULL;
    char *config = read_text(fixtures, "config.json", &len);
    CHECK_STATUS(ota_file_device_record(dev, record, sizeof record, &rn), OTA_STATUS_OK);
    CHECK_STATUS(ota_file_device_io(dev, &io), OTA_STATUS_OK);
    now += 1000;
    CHECK_STATUS(ota_agent_new(config, len, record, rn, now, &io, &agent), OTA_STATUS_OK);
    free(config);
    return agent;
}

/* Carries out the agent's commands until it rests. Fetches are served at once from the
 * artifact, in the order asked; after `cut_after` chunks the power goes (0: never). Returns
 * the agent, a new one after a power cut. */
static ota_agent *drive(ota_agent *agent, ota_file_device **dev, const char *state,
                        const char *artifact_name, size_t cut_after) {
    static char text[1 << 18];
    size_t n = 0, len = 0, delivered = 0;
    unsigned char *artifact = read_file(fixtures, artifact_name, &len);
    for (;;) {
        ota_command c;
        uint64_t at = 0;
        CHECK_STATUS(ota_agent_poll(agent, &c, text, sizeof text, &n), OTA_STATUS_OK);
        switch (c.kind) {
        case OTA_COMMAND_KIND_NONE:
            CHECK_STATUS(ota_agent_timeout(agent, &at), OTA_STATUS_OK);
            if (at == UINT64_MAX) {
                free(artifact);
                return agent;
            }
            now = now > at ? now : at;
            CHECK_STATUS(ota_agent_handle_tick(agent, now), OTA_STATUS_OK);
            break;
        case OTA_COMMAND_KIND_PERSIST:
            CHECK_STATUS(ota_file_device_persist(*dev, text, n), OTA_STATUS_OK);
            break;
        case OTA_COMMAND_KIND_FETCH:
            CHECK(c.offset + c.length <= len);
            CHECK_STATUS(ota_agent_handle_chunk(agent, c.offset, artifact + c.offset, c.length, now, NULL),
                         OTA_STATUS_OK);
            if (cut_after && ++delivered == cut_after) {
                printf("power cut after %zu chunks, state %s\n", delivered, ota_agent_state(agent));
                /* Everything in RAM is gone: the agent, and the device's handle. */
                ota_agent_free(agent);
                ota_file_device_free(*dev);
                *dev = open_device(state);
                agent = boot(*dev);
                cut_after = 0;
            }
            break;
        case OTA_COMMAND_KIND_SWAP:
            CHECK_STATUS(ota_file_device_swap(*dev, text, n), OTA_STATUS_OK);
            /* Carried out again after a power cut: nothing more happens. */
            CHECK_STATUS(ota_file_device_swap(*dev, text, n), OTA_STATUS_OK);
            CHECK_STATUS(ota_agent_handle_swapped(agent, now), OTA_STATUS_OK);
            break;
        case OTA_COMMAND_KIND_PROBE: {
            /* The fixtures' probes: /bin/true is healthy, /bin/false is not. */
            bool healthy = strstr(text, "/bin/true") != NULL;
            CHECK_STATUS(ota_agent_handle_probe_result(agent, healthy, "fixture", 7, now), OTA_STATUS_OK);
            break;
        }
        case OTA_COMMAND_KIND_RESTORE_PREVIOUS:
            CHECK_STATUS(ota_file_device_restore(*dev, text, n), OTA_STATUS_OK);
            CHECK_STATUS(ota_file_device_restore(*dev, text, n), OTA_STATUS_OK);
            CHECK_STATUS(ota_agent_handle_restored(agent, now), OTA_STATUS_OK);
            break;
        case OTA_COMMAND_KIND_REPORT:
            CHECK_STATUS(ota_report_parse_status(text, n, &last_status), OTA_STATUS_OK);
            reports++;
            printf("report: %s\n", text);
            break;
        default:
            CHECK(!"unknown command");
            free(artifact);
            return agent;
        }
    }
}

/* The active slot's file holds the plaintext `plain_name`. */
static int runs(ota_file_device *dev, const char *plain_name) {
    char path[4096];
    size_t n = 0, a = 0, b = 0;
    unsigned char *want, *have;
    char *slash;
    int same;
    CHECK_STATUS(ota_file_device_active_file(dev, path, sizeof path, &n), OTA_STATUS_OK);
    if (n == 0) {
        return 0;
    }
    want = read_file(fixtures, plain_name, &a);
    slash = strrchr(path, '/');
    *slash = 0;
    have = read_file(path, slash + 1, &b);
    same = a == b && memcmp(want, have, a) == 0;
    free(want);
    free(have);
    return same;
}

static void assign(ota_agent *agent, const char *name) {
    size_t len = 0;
    char *a = read_text(fixtures, name, &len);
    CHECK_STATUS(ota_agent_handle_assignment(agent, a, len, now), OTA_STATUS_OK);
    free(a);
}

int main(int argc, char **argv) {
    const char *state;
    ota_file_device *dev;
    ota_agent *agent;
    char buf[64];
    size_t n = 0;
    if (argc != 3) {
        fprintf(stderr, "usage: file_device FIXTURES STATE\n");
        return 2;
    }
    fixtures = argv[1];
    state = argv[2];

    /* Bad input is refused with a clear error, never a crash. */
    CHECK_STATUS(ota_file_device_open(NULL, 0, NULL, 0, &dev), OTA_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ota_file_device_open(state, strlen(state), "../escape", 9, &dev), OTA_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(last_error(), "plain file name") != NULL);
    CHECK_STATUS(ota_file_device_io(NULL, NULL), OTA_STATUS_NULL_POINTER);

    dev = open_device(state);
    CHECK_STATUS(ota_file_device_active_file(dev, buf, sizeof buf, &n), OTA_STATUS_OK);
    CHECK(n == 0); /* nothing installed yet */

    /* 2.0.0 (7 chunks), with a power cut after 3: the agent resumes from the record. */
    agent = boot(dev);
    assign(agent, "assign-2.0.0.json");
    agent = drive(agent, &dev, state, "artifact-2.0.0.enc", 3);
    CHECK(last_status == OTA_REPORT_STATUS_SUCCESS);
    CHECK(runs(dev, "plain-2.0.0.bin"));
    CHECK_STATUS(ota_agent_installed_version(agent, "temp-sensor-fw", 14, buf, sizeof buf, &n), OTA_STATUS_OK);
    CHECK(strcmp(buf, "2.0.0") == 0);

    /* A restart keeps the committed state: the record and the active slot. */
    ota_agent_free(agent);
    ota_file_device_free(dev);
    dev = open_device(state);
    agent = boot(dev);
    CHECK(strcmp(ota_agent_state(agent), "idle") == 0);
    CHECK(runs(dev, "plain-2.0.0.bin"));

    /* 2.1.0: its probe fails, the device rolls back to 2.0.0 on its own. */
    assign(agent, "assign-2.1.0.json");
    agent = drive(agent, &dev, state, "artifact-2.1.0.enc", 0);
    CHECK(last_status == OTA_REPORT_STATUS_FAILURE);
    CHECK(runs(dev, "plain-2.0.0.bin"));

    ota_agent_free(agent);
    ota_file_device_free(dev);
    ota_file_device_free(NULL);
    printf("reports: %d\n", reports);
    return check_summary("file_device");
}
