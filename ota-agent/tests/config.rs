//! Every configuration error names its field, and a good configuration reads as written.

use ota_agent::{Config, ConfigError, SlotsConfig};

fn base() -> String {
    format!(
        r#"server = "http://127.0.0.1:8080/"
device_id = "dev-0001"
state_dir = "/var/lib/ota-agent"
trusted_keys = ["{}"]
exec_allowlist = ["/usr/bin/app-health"]
bandwidth_bytes_per_sec = 1000000
concurrency = 8

[device]
profile_id = "prof_temp_v2"
device_type = "temp-sensor"
hardware_profile = "acme-sensor-v2"
arch = "armv7"
memory_mb = 512
installed = {{ temp-sensor-fw = "1.2.0" }}

[slots]
kind = "directory"
root = "/var/lib/app"

[probe]
kind = "exec"
path = "/usr/bin/app-health"
timeout_ms = 5000

[probe_policy]
successes_needed = 1
"#,
        ota_core::sign::SigningKey::from_secret([1; 32])
            .public_key()
            .to_hex()
    )
}

#[test]
fn a_good_configuration_reads_as_written() {
    let c = Config::from_toml(&base()).unwrap();
    assert_eq!(c.server, "http://127.0.0.1:8080");
    assert_eq!(c.device_id().as_str(), "dev-0001");
    assert_eq!(c.device.arch.as_str(), "armv7");
    assert_eq!(c.device.memory_mb, Some(512));
    assert_eq!(c.profile_id.as_ref().unwrap().as_str(), "prof_temp_v2");
    assert_eq!(
        c.credential_file,
        std::path::Path::new("/var/lib/ota-agent/credential")
    );
    assert_eq!(c.bandwidth, Some(1_000_000));
    assert_eq!(c.concurrency, 8);
    assert_eq!(c.probe_policy.successes_needed, 1);
    assert_eq!(
        c.download_deadline,
        std::time::Duration::from_millis(ota_core::agent::config::DEFAULT_DOWNLOAD_DEADLINE_MS)
    );
    let short = Config::from_toml(&base().replace(
        "concurrency = 8",
        "concurrency = 8\ndownload_deadline_ms = 3000",
    ))
    .unwrap();
    assert_eq!(
        short.download_deadline,
        std::time::Duration::from_millis(3000)
    );
    assert_eq!(
        c.slots,
        SlotsConfig::Directory {
            root: "/var/lib/app".into(),
            file: "payload".into()
        }
    );
    // Left out: the machine's architecture and a generic profile.
    let detected = base()
        .replace("hardware_profile = \"acme-sensor-v2\"\n", "")
        .replace("arch = \"armv7\"\n", "");
    let c = Config::from_toml(&detected).unwrap();
    assert_eq!(c.device.arch, ota_agent::hardware::arch());
    assert!(
        c.device.hardware_profile.as_str().starts_with("generic-") || c.device.builtin().is_some()
    );
}

#[test]
fn every_config_error_names_its_field() {
    let b = base();
    // Each case: the base configuration with `from` replaced by `to`, and the field the error
    // names.
    let cases: [(&str, &str, &str); 25] = [
        ("server = \"http://127.0.0.1:8080/\"\n", "", "server"),
        ("http://127.0.0.1:8080/", "ftp://127.0.0.1", "server"),
        ("http://127.0.0.1:8080/", "http://[::1", "server"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:99999", "server"),
        ("http://127.0.0.1:8080/", "http://", "server"),
        ("concurrency = 8", "max_backoff_ms = 0", "max_backoff_ms"),
        ("\"dev-0001\"", "\"dev 0001!\"", "device_id"),
        (
            "trusted_keys = [\"",
            "trusted_keys = [\"zz",
            "trusted_keys[0]",
        ),
        (
            "trusted_keys = [",
            "threshold = 2\ntrusted_keys = [",
            "threshold",
        ),
        ("concurrency = 8", "concurrency = 0", "concurrency"),
        ("concurrency = 8", "concurrency = \"many\"", "concurrency"),
        ("concurrency = 8", "colour = \"red\"", "colour"),
        (
            "concurrency = 8",
            "download_deadline_ms = 0",
            "download_deadline_ms",
        ),
        (
            "concurrency = 8",
            "download_deadline_ms = \"soon\"",
            "download_deadline_ms",
        ),
        ("kind = \"directory\"", "kind = \"floppy\"", "slots.kind"),
        (
            "root = \"/var/lib/app\"",
            "rot = \"/var/lib/app\"",
            "slots.rot",
        ),
        (
            "kind = \"directory\"\nroot = \"/var/lib/app\"",
            "kind = \"block\"\na = \"/dev/a\"\nb = \"/dev/b\"\nswitch = []",
            "slots.switch",
        ),
        (
            "root = \"/var/lib/app\"",
            "root = \"/var/lib/app\"\nfile = \"../x\"",
            "slots.file",
        ),
        ("device_type = \"temp-sensor\"\n", "", "device.device_type"),
        ("arch = \"armv7\"", "arch = \"sparc\"", "device.arch"),
        ("\"1.2.0\"", "\"one\"", "device"),
        (
            "path = \"/usr/bin/app-health\"",
            "path = \"/bin/sh\"",
            "probe",
        ),
        (
            "successes_needed = 1",
            "successes_needed = -1",
            "probe_policy.successes_needed",
        ),
        (
            "bandwidth_bytes_per_sec = 1000000",
            "bandwidth_bytes_per_sec = 1.5",
            "bandwidth_bytes_per_sec",
        ),
        ("[slots]", "[slots", "line 17"),
    ];
    let mut wrong = Vec::new();
    for (from, to, field) in cases {
        assert!(b.contains(from), "{field}: the base has no {from:?}");
        match Config::from_toml(&b.replace(from, to)) {
            Err(e @ ConfigError::Invalid { .. })
                if e.field() == field && e.to_string().starts_with(field) => {}
            other => wrong.push(format!("{field}: {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    let e = Config::load(std::path::Path::new("/nonexistent/agent.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e}");
    assert_eq!(e.field(), "config");
    let profile = b.replace(
        "device_type = \"temp-sensor\"",
        "profile_file = \"/nonexistent/device.json\"",
    );
    let e = Config::from_toml(&profile).unwrap_err();
    assert_eq!(e.field(), "device.profile_file", "{e}");
}

#[test]
fn a_block_backend_without_the_booted_command_is_refused() {
    // Without `booted`, a switch that needs a reboot would look done, and the probe would
    // judge the old slot, still running.
    let b = base().replace(
        "kind = \"directory\"\nroot = \"/var/lib/app\"",
        "kind = \"block\"\na = \"/dev/a\"\nb = \"/dev/b\"\nswitch = [\"/usr/bin/fw_setenv\", \"ota_slot\", \"{slot}\"]",
    );
    match Config::from_toml(&b) {
        Err(e @ ConfigError::Invalid { .. }) => {
            assert_eq!(e.field(), "slots.booted", "{e}");
            assert!(e.to_string().starts_with("slots.booted"), "{e}");
        }
        other => panic!("expected slots.booted to be refused, got {other:?}"),
    }
    let with = b.replace(
        "\"{slot}\"]",
        "\"{slot}\"]\nbooted = [\"/usr/bin/fw_printenv\", \"-n\", \"ota_slot\"]",
    );
    let c = Config::from_toml(&with).unwrap();
    assert!(
        matches!(c.slots, SlotsConfig::Block { command_timeout, .. }
            if command_timeout == ota_agent::config::SLOT_COMMAND_TIMEOUT),
        "{:?}",
        c.slots
    );
    // How long each command may run: read in milliseconds, and 0 refused naming the field.
    let timed = with.replace("\nbooted =", "\ncommand_timeout_ms = 1500\nbooted =");
    let c = Config::from_toml(&timed).unwrap();
    assert!(
        matches!(c.slots, SlotsConfig::Block { command_timeout, .. }
            if command_timeout == std::time::Duration::from_millis(1500)),
        "{:?}",
        c.slots
    );
    let zero = with.replace("\nbooted =", "\ncommand_timeout_ms = 0\nbooted =");
    let e = Config::from_toml(&zero).unwrap_err();
    assert_eq!(e.field(), "slots.command_timeout_ms", "{e}");
}

#[test]
fn the_example_configuration_and_the_systemd_unit_agree() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let path = std::path::Path::new(dir).join("agent.example.toml");
    let c = Config::load(&path).unwrap();
    assert_eq!(c.device_id().as_str(), "dev-0001");
    assert_eq!(c.concurrency, 4);
    assert_eq!(c.bandwidth, None);
    let unit =
        std::fs::read_to_string(std::path::Path::new(dir).join("dist/ota-agent.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/ota-agent --config /etc/ota-agent/agent.toml"));
    assert!(unit.contains("StateDirectory=ota-agent"));
    assert_eq!(c.state_dir, std::path::Path::new("/var/lib/ota-agent"));
    // The commented block backend is a valid configuration too: it replaces the directory.
    let text = std::fs::read_to_string(&path).unwrap();
    let commented = &text[text.find("# [slots]\n").unwrap()..];
    let commented = &commented[..commented.find("\n\n").unwrap()];
    let uncommented: Vec<&str> = commented
        .lines()
        .map(|l| l.trim_start_matches("# "))
        .collect();
    let dir_start = text.find("[slots]\nkind = \"directory\"").unwrap();
    let dir_end = dir_start + text[dir_start..].find("\n\n").unwrap();
    let block = format!(
        "{}{}{}",
        &text[..dir_start],
        uncommented.join("\n"),
        &text[dir_end..]
    )
    .replace(commented, "");
    let c = Config::from_toml(&block).unwrap();
    assert!(
        matches!(c.slots, SlotsConfig::Block { ref reboot, .. } if reboot.is_some()),
        "{:?}",
        c.slots
    );
}
