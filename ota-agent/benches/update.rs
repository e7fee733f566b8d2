//! One device updating a dense artifact (256 MiB of model-like weights by default,
//! `OTA_BENCH_MIB` to change it) from an `ota-server` on loopback, against two references
//! measured in the same run on the same bytes:
//!
//! - the library's device pipeline alone, in process: every chunk read from the artifact file,
//!   accepted into a staging file (verified against the signed table), and the verified
//!   prefix installed (decrypted, gunzipped, digests confirmed) into a slot file, fsynced —
//!   what the daemon does, without HTTP, processes or the agent around it;
//! - `curl` of the same chunks from the same server (one connection, in order) piped into
//!   `openssl enc -d -aes-256-cbc | gzip -d | sha256sum`.
//!
//! The daemon is the `ota-agent` binary, `--once`, timed from its start to its exit (poll,
//! download with 4 chunks in flight, install, swap, one probe, report); its peak RSS is the
//! VmHWM of `/proc/PID/status`, sampled until it exits.
//!
//! Run: `cargo bench -p ota-agent --bench update` (not part of CI).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ota_core::download::{Download, Install, Staging};
use ota_core::seal::{SealKey, Sealer};
use ota_core::sign::{self, SigningKey};
use ota_core::{Limits, Package};
use serde_json::{Value, json};

const MIB: u64 = 1 << 20;
const KEY: [u8; 32] = [0x42; 32];
const IV: [u8; 16] = [0x24; 16];

struct FileStaging(File);

impl Staging for FileStaging {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.0.write_all_at(data, offset)
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
}

fn rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap()
}

/// Seals `mib` MiB of dense weights into `dir/in/artifact.enc`; answers the signed
/// envelope, the package id and the artifact's size.
fn seal(dir: &Path, mib: u64) -> (String, String, u64) {
    let plain = ota_sim::dense_weights((mib * MIB) as usize, 7);
    let path = dir.join("in/artifact.enc");
    let out = std::io::BufWriter::new(File::create(&path).unwrap());
    let mut s = Sealer::new(&SealKey::from_bytes(KEY), IV, out).unwrap();
    s.write_all(&plain).unwrap();
    let (sealed, mut out) = s.finish().unwrap();
    out.flush().unwrap();
    let mut p = Package::from_json(
        json!({
            "type": "fw", "name": "bench-weights", "version": "2.0.0",
            "artifact_uri": "s3://bench/weights.enc",
            "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "size_bytes": 1,
            "compatibility": {"device_types": ["bench-device"]},
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    p.set_sealed(&sealed);
    let env = sign::sign(&p, &[&SigningKey::from_secret([1; 32])]).unwrap();
    let id = ota_core::PackageId::of(&env.payload).to_string();
    (env.to_json(), id, std::fs::metadata(&path).unwrap().len())
}

/// The library's device pipeline alone; answers the seconds it took.
fn library(dir: &Path, envelope: &str) -> f64 {
    let trusted = [SigningKey::from_secret([1; 32]).public_key()]
        .into_iter()
        .collect();
    let verified = sign::verify(envelope.as_bytes(), &trusted, 1, &Limits::DEFAULT).unwrap();
    let start = Instant::now();
    let mut source = File::open(dir.join("in/artifact.enc")).unwrap();
    let mut staging = FileStaging(rw(&dir.join("lib-staging")));
    let slot = rw(&dir.join("lib-slot"));
    let mut download = Download::new(&verified);
    let mut install = Install::new(
        &verified,
        &SealKey::from_bytes(KEY),
        std::io::BufWriter::with_capacity(256 << 10, slot),
    );
    let mut buf = vec![0u8; 65536];
    for r in download.plan(usize::MAX) {
        let chunk = &mut buf[..r.length as usize];
        source.seek(SeekFrom::Start(r.offset)).unwrap();
        source.read_exact(chunk).unwrap();
        download.accept(r.offset, chunk, &mut staging).unwrap();
        install.advance(&mut download, &mut staging).unwrap();
    }
    let (_, slot) = install.finish().unwrap();
    slot.into_inner().unwrap().sync_all().unwrap();
    start.elapsed().as_secs_f64()
}

/// The CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces), from field 3 on.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse().ok())
}

fn main() {
    let mib: u64 = std::env::var("OTA_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let dir: PathBuf = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("agent-update-bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("in")).unwrap();
    eprintln!("sealing {mib} MiB of dense weights...");
    let (envelope, pkg, size) = seal(&dir, mib);
    let mb = size as f64 / MIB as f64;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (base, admin, cred, running) = rt.block_on(async {
        let mut c = ota_server::Config::new(dir.join("data"));
        c.listen = "127.0.0.1:0".parse().unwrap();
        c.artifact_roots = vec![dir.join("in")];
        c.trusted_keys = vec![SigningKey::from_secret([1; 32]).public_key().to_hex()];
        c.jwt_secret = Some("bench".into());
        c.body_limit = 16 << 20;
        let running = ota_server::serve(c).await.unwrap();
        let base = format!("http://{}", running.addr);
        let admin = running.state.jwt.token("bench", "acme", "admin", 3600);
        let http = reqwest::Client::new();
        let call = |m: &str, path: &str, body: Value| {
            http.request(m.parse().unwrap(), format!("{base}{path}"))
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
        };
        let up = json!({
            "envelope": serde_json::from_str::<Value>(&envelope).unwrap(),
            "encryption_key": SealKey::from_bytes(KEY).to_hex(),
            "artifact_uri": format!("file://{}", dir.join("in/artifact.enc").display()),
        });
        let r = call("POST", "/api/v1/ota/packages", up).await.unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let r = call("PUT", "/api/v1/ota/profiles/prof-bench", json!({}))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = call(
            "PUT",
            "/api/v1/devices/dev-bench",
            json!({"profile_id": "prof-bench", "device_type": "bench-device",
                   "hardware_profile": "generic-x86_64", "arch": "x86_64", "installed": {}}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        let cred = v["credential"].as_str().unwrap().to_string();
        let r = call(
            "POST",
            "/api/v1/ota/rollouts",
            json!({"package_id": pkg, "target_profile_id": "prof-bench", "canary_percent": 100}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        (base, admin, cred, running)
    });
    let _ = admin;

    // The library alone.
    let lib_secs = library(&dir, &envelope);

    // curl | openssl | gzip | sha256sum, the same chunks from the same server.
    let mut cfg = String::from("silent\nfail\n");
    cfg.push_str(&format!("header = \"Authorization: Bearer {cred}\"\n"));
    for off in (0..size).step_by(65536) {
        cfg.push_str(&format!(
            "url = \"{base}/api/v1/devices/dev-bench/ota/chunk?package_id={pkg}&offset={off}&length=65536\"\n"
        ));
    }
    std::fs::write(dir.join("curl.cfg"), cfg).unwrap();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let pipeline = format!(
        "curl -K {} | tail -c +17 | openssl enc -d -aes-256-cbc -K {} -iv {} | gzip -dc | sha256sum",
        dir.join("curl.cfg").display(),
        hex(&KEY),
        hex(&IV)
    );
    let t = Instant::now();
    let out = Command::new("sh").args(["-c", &pipeline]).output().unwrap();
    let curl_secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The daemon.
    let state = dir.join("agent-state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("credential"), &cred).unwrap();
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"server = "{base}"
device_id = "dev-bench"
state_dir = {state:?}
trusted_keys = ["{key}"]
exec_allowlist = ["/bin/true"]
[device]
device_type = "bench-device"
hardware_profile = "generic-x86_64"
arch = "x86_64"
[slots]
kind = "directory"
root = {root:?}
[probe]
kind = "exec"
path = "/bin/true"
timeout_ms = 5000
[probe_policy]
initial_delay_ms = 0
successes_needed = 1
"#,
            key = SigningKey::from_secret([1; 32]).public_key().to_hex(),
            root = dir.join("agent-slots"),
        ),
    )
    .unwrap();
    let server_cpu = cpu_secs("self").unwrap_or(0.0);
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ota-agent"))
        .arg("--config")
        .arg(&config)
        .args(["--once", "--log", "warn"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0;
    let mut agent_cpu = 0.0;
    let status = loop {
        if let Some(h) = vm_hwm_kib(pid) {
            peak = peak.max(h);
        }
        if let Some(c) = cpu_secs(&pid.to_string()) {
            agent_cpu = c;
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let daemon_secs = t.elapsed().as_secs_f64();
    let server_cpu = cpu_secs("self").unwrap_or(0.0) - server_cpu;
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success() && out.starts_with("Updated"), "{out}");
    running.stop();
    drop(rt);

    let rate = |s: f64| mb / s;
    println!(
        "agent-update {mb:.0} MiB artifact: daemon {:.2} s ({:.0} MiB/s), library pipeline alone {:.2} s ({:.0} MiB/s), \
         curl|openssl|gzip|sha256sum {:.2} s ({:.0} MiB/s)",
        daemon_secs,
        rate(daemon_secs),
        lib_secs,
        rate(lib_secs),
        curl_secs,
        rate(curl_secs),
    );
    println!(
        "agent-update ratios: daemon / library {:.2}x (goal >= 0.8), daemon / curl pipeline {:.2}x",
        lib_secs / daemon_secs,
        curl_secs / daemon_secs
    );
    println!(
        "agent-update CPU: daemon {agent_cpu:.2} s, the server serving it {server_cpu:.2} s, \
         library {lib_secs:.2} s (one core); load average {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "agent-update daemon peak RSS {:.1} MiB (VmHWM; goal <= 16 MiB)",
        peak as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}
