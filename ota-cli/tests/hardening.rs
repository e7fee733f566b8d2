//! The `ota` command under attack and misuse (issue 15's CLI items), each run through the real
//! binary: endless and oversized inputs, redirects of the admin API, failed and interrupted
//! runs, special files at `--out`, a full disk, the umask, and key material off the command
//! line.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::{Run, keygen, ota, ota_env, pack_args, s, with};
use serde_json::Value;

/// The `ota` binary under test.
fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ota")
}

/// A firmware image of `size` bytes packed into `dir/out`, with a random AES key.
struct Packed {
    public: PathBuf,
    image: Vec<u8>,
    out: PathBuf,
    artifact: PathBuf,
}

fn packed(dir: &Path, size: usize, version: &str) -> Packed {
    let key = dir.join("keys/private.pem");
    if !key.exists() {
        keygen(dir, "keys");
    }
    let image = ota_tests::noise(size, 3);
    std::fs::write(dir.join("image.bin"), &image).unwrap();
    let out = dir.join("out");
    ota(&fw_args(dir, &out, version)).expect(0);
    Packed {
        public: dir.join("keys/public.pem"),
        image,
        artifact: out.join(format!("prod/yolo-v8n-arm64-{version}.enc")),
        out,
    }
}

/// `ota pack` of `dir/image.bin` as firmware, seed 002's `--version` being `version`.
fn fw_args(dir: &Path, out: &Path, version: &str) -> Vec<String> {
    let mut args = pack_args(&dir.join("keys/private.pem"), out);
    let v = args.iter().position(|a| a == "--version").unwrap();
    args[v + 1] = version.to_string();
    with(
        args,
        &[
            "--type",
            "fw",
            "--file",
            &s(&dir.join("image.bin")),
            "--package-version",
            "1.0.0",
            "--bucket",
            "fw",
        ],
    )
}

/// Runs `ota args` through `sh` with `setup` first (a umask, a file size limit).
fn ota_sh(setup: &str, args: &[String], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{setup}; exec \"$0\" \"$@\""))
        .arg(bin())
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Waits for `child` to end, at most `limit`; kills it and fails if it does not.
fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `ota args` and waits for it, at most `limit` (an endless input must not hang it).
fn ota_bounded(args: &[&str], limit: Duration) -> Run {
    let mut child = Command::new(bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_bounded(&mut child, limit, &format!("ota {}", args.join(" ")));
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

// Item 10.

#[test]
fn a_fleet_is_read_as_a_stream_within_its_limits() {
    let t = tempfile::tempdir().unwrap();
    let pkg = s(&common::fixture(
        "packages/valid/model-tensorrt-orin-nx.json",
    ));
    let profiles: Vec<Value> = [
        "orin-nx-line-camera",
        "xavier-nx-one-dla",
        "custom-npu-board",
    ]
    .iter()
    .map(|f| {
        serde_json::from_slice(
            &std::fs::read(common::fixture(&format!("profiles/valid/{f}.json"))).unwrap(),
        )
        .unwrap()
    })
    .collect();
    // JSON Lines, as well as an array.
    let lines: String = profiles.iter().map(|p| format!("{p}\n")).collect();
    let f = t.path().join("fleet.jsonl");
    std::fs::write(&f, lines).unwrap();
    let r = ota(&["check", "--package", &pkg, "--fleet", &s(&f), "--json"]);
    r.expect(0);
    assert_eq!(
        (r.json()["total"].as_u64(), r.json()["eligible"].as_u64()),
        (Some(3), Some(1))
    );
    // A profile beyond the per-document limit is refused, naming its index.
    let mut big = profiles[1].clone();
    big["labels"]["padding"] = Value::String("x".repeat(2 << 20));
    let f = t.path().join("fleet.json");
    std::fs::write(
        &f,
        serde_json::to_string(&vec![profiles[0].clone(), big]).unwrap(),
    )
    .unwrap();
    let r = ota(&["check", "--package", &pkg, "--fleet", &s(&f)]);
    r.expect(1)
        .stderr_has(&["fleet.json", "exceeds the limit of 1048576 bytes"]);
    // An endless fleet stops at the limit instead of filling the memory.
    let r = ota_bounded(
        &["check", "--package", &pkg, "--fleet", "/dev/zero"],
        Duration::from_secs(120),
    );
    r.expect(1).stderr_has(&["/dev/zero", "exceeds the limit"]);
    // Duplicate ids are still refused, by index.
    let f = t.path().join("dup.jsonl");
    std::fs::write(&f, format!("{}\n{}\n", profiles[0], profiles[0])).unwrap();
    let r = ota(&["check", "--package", &pkg, "--fleet", &s(&f)]);
    r.expect(1).stderr_has(&["[1].device_id: duplicate value"]);
}

/// The three fixture profiles (one fits the package, two do not) as `n` devices of distinct
/// ids `dev-0`, `dev-1`...
fn many_profiles(n: usize) -> Vec<Value> {
    let base: Vec<Value> = [
        "orin-nx-line-camera",
        "xavier-nx-one-dla",
        "custom-npu-board",
    ]
    .iter()
    .map(|f| {
        serde_json::from_slice(
            &std::fs::read(common::fixture(&format!("profiles/valid/{f}.json"))).unwrap(),
        )
        .unwrap()
    })
    .collect();
    (0..n)
        .map(|i| {
            let mut p = base[(i * 7 + i / 5) % 3].clone();
            p["device_id"] = Value::String(format!("dev-{i}"));
            p
        })
        .collect()
}

/// More profiles than the uniqueness check keeps in one sorted run (32768), and than a batch
/// or a read block holds.
const BIG_FLEET: usize = 40_000;

#[test]
fn the_output_of_a_fleet_larger_than_one_run_is_the_fleet_held_whole() {
    let t = tempfile::tempdir().unwrap();
    let pkg_path = common::fixture("packages/valid/model-tensorrt-orin-nx.json");
    let pkg = s(&pkg_path);
    let profiles = many_profiles(BIG_FLEET);
    let array = serde_json::to_string_pretty(&profiles).unwrap();
    // What the core's fleet check gives on the fleet held whole.
    let package = ota_core::Package::from_json(&std::fs::read(&pkg_path).unwrap()).unwrap();
    let whole =
        ota_core::DeviceProfile::fleet_from_json(array.as_bytes(), &ota_core::Limits::DEFAULT)
            .unwrap();
    let expected = ota_core::compat::check_fleet(&package, &whole);
    assert!(expected.eligible.len() > 1000 && expected.rejected > 1000);
    let lines: String = profiles.iter().map(|p| format!("{p}\n")).collect();
    for (name, text) in [("fleet.json", array), ("fleet.jsonl", lines)] {
        let f = t.path().join(name);
        std::fs::write(&f, text).unwrap();
        let r = ota(&["check", "--package", &pkg, "--fleet", &s(&f), "--json"]);
        r.expect(0);
        let j = r.json();
        assert_eq!(j["total"], BIG_FLEET, "{name}");
        assert_eq!(j["eligible"], expected.eligible.len(), "{name}");
        assert_eq!(j["rejected"], expected.rejected, "{name}");
        assert_eq!(
            j["reasons"],
            serde_json::to_value(&expected.reasons).unwrap(),
            "{name}"
        );
        assert_eq!(
            j["eligible_devices"],
            serde_json::to_value(&expected.eligible).unwrap(),
            "{name}"
        );
        // The text form gives the same counts.
        let r = ota(&["check", "--package", &pkg, "--fleet", &s(&f)]);
        r.expect(0);
        assert!(
            r.stdout.contains(&format!(
                "{} of {BIG_FLEET} device(s) eligible, {} rejected",
                expected.eligible.len(),
                expected.rejected
            )),
            "{}",
            r.stdout
        );
    }
}

#[test]
fn a_duplicate_id_found_across_spilled_runs_is_still_refused_and_named() {
    let t = tempfile::tempdir().unwrap();
    let pkg = s(&common::fixture(
        "packages/valid/model-tensorrt-orin-nx.json",
    ));
    let f = t.path().join("fleet.json");
    let check = |profiles: &[Value]| {
        std::fs::write(&f, serde_json::to_string(profiles).unwrap()).unwrap();
        ota(&["check", "--package", &pkg, "--fleet", &s(&f), "--json"])
    };
    // dev-5 again far past the first run: refused, by the repeat's index.
    let mut profiles = many_profiles(BIG_FLEET);
    profiles[39_000]["device_id"] = Value::String("dev-5".into());
    let r = check(&profiles);
    r.expect(1)
        .stderr_has(&["fleet.json", "[39000].device_id: duplicate value \"dev-5\""]);
    assert_eq!(r.json()["status"], "invalid");
    // Of two repeats, the first in file order.
    profiles[36_000]["device_id"] = Value::String("dev-35000".into());
    check(&profiles)
        .expect(1)
        .stderr_has(&["[36000].device_id: duplicate value \"dev-35000\""]);
    // A faulty profile after the repeat: the repeat is reported; before it: the fault.
    profiles[39_500]["arch"] = Value::String("sparc".into());
    check(&profiles)
        .expect(1)
        .stderr_has(&["[36000].device_id: duplicate value"]);
    profiles[100]["arch"] = Value::String("sparc".into());
    check(&profiles).expect(1).stderr_has(&["[100].arch"]);
}

#[test]
fn a_fleet_that_is_not_json_is_refused_with_its_line_and_column() {
    let t = tempfile::tempdir().unwrap();
    let pkg = s(&common::fixture(
        "packages/valid/model-tensorrt-orin-nx.json",
    ));
    let profiles = many_profiles(2);
    let f = t.path().join("fleet.json");
    let cases = [
        (
            format!("[\n{},\n{}\n x]", profiles[0], profiles[1]),
            "expected `,` or `]` at line 4 column 2",
        ),
        (
            format!("[\n{},\n]", profiles[0]),
            "trailing comma at line 3 column 1",
        ),
        (format!("[\n{}", profiles[0]), "EOF while parsing a list"),
        (
            format!("[\n{}] x", profiles[0]),
            "trailing characters at line 2",
        ),
        (
            "[\n  {\"device_id\": tru}]".to_string(),
            "expected ident at line 2 column 20",
        ),
        (
            String::new(),
            "EOF while parsing a value at line 1 column 0",
        ),
    ];
    for (text, message) in cases {
        std::fs::write(&f, &text).unwrap();
        let r = ota(&["check", "--package", &pkg, "--fleet", &s(&f)]);
        r.expect(1).stderr_has(&["fleet.json: fleet: ", message]);
    }
}

// Item 16.

/// An HTTP server on loopback answering every request with `reply`; sends each request line.
fn http_server(reply: String) -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut length = 0;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = stream;
            let _ = stream.write_all(reply.as_bytes());
            if tx.send(line.trim_end().to_string()).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

#[test]
fn publish_refuses_a_redirect_to_another_origin_and_names_it() {
    let t = tempfile::tempdir().unwrap();
    let p = packed(t.path(), 10_000, "1");
    let (elsewhere, got_elsewhere) =
        http_server("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".into());
    let (api, got_api) = http_server(format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: {elsewhere}/steal\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    ));
    let r = ota_env(
        &[
            "publish",
            "--dir",
            &s(&p.out),
            "--store",
            &s(&t.path().join("store")),
        ],
        &[("ADMIN_API_URL", &api), ("ADMIN_API_TOKEN", "s3cr3t")],
    );
    r.expect(2)
        .stderr_has(&["307", &format!("{elsewhere}/steal"), "another origin"]);
    assert!(!r.stdout.contains("registered at"), "{}", r.stdout);
    assert_eq!(
        got_api.recv_timeout(Duration::from_secs(10)).unwrap(),
        "POST /internal/resources/publish HTTP/1.1"
    );
    assert!(
        got_elsewhere.try_recv().is_err(),
        "the key and the token went to another origin"
    );
}

#[test]
fn publish_gives_up_on_a_silent_admin_api_and_says_after_how_long() {
    let t = tempfile::tempdir().unwrap();
    let p = packed(t.path(), 10_000, "1");
    // It accepts the connection and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let (held_tx, held) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if held_tx.send(stream).is_err() {
                return;
            }
        }
    });
    let r = ota_env(
        &[
            "publish",
            "--dir",
            &s(&p.out),
            "--store",
            &s(&t.path().join("store")),
            "--admin-api-timeout",
            "1",
        ],
        &[("ADMIN_API_URL", &api), ("ADMIN_API_TOKEN", "t")],
    );
    r.expect(2).stderr_has(&[
        "no answer within 1 s",
        "--admin-api-timeout",
        "not registered",
    ]);
    assert!(held.try_recv().is_ok(), "it never connected");
}

// Item 17.

#[test]
fn a_failed_pack_loses_nothing_old() {
    let t = tempfile::tempdir().unwrap();
    let p = packed(t.path(), 50_000, "1");
    let old_package = std::fs::read(p.out.join("package.json")).unwrap();
    let old_registration = std::fs::read(p.out.join("registration.json")).unwrap();
    // Version 2's artifact cannot be renamed into place: the package and the key of version 1
    // stay, and nothing of version 2 appears.
    let blocked = p.out.join("prod/yolo-v8n-arm64-2.enc");
    std::fs::create_dir_all(blocked.join("in-the-way")).unwrap();
    let r = ota(&with(fw_args(t.path(), &p.out, "2"), &["--force"]));
    r.expect(2).stderr_has(&["yolo-v8n-arm64-2.enc"]);
    assert_eq!(
        std::fs::read(p.out.join("package.json")).unwrap(),
        old_package
    );
    assert_eq!(
        std::fs::read(p.out.join("registration.json")).unwrap(),
        old_registration
    );
    assert_eq!(names(&p.out), ["package.json", "prod", "registration.json"]);
    assert_eq!(
        names(&p.out.join("prod")),
        ["yolo-v8n-arm64-1.enc", "yolo-v8n-arm64-2.enc"]
    );

    // The last rename fails (registration.json is in the way): the artifact and the package
    // it replaced come back.
    std::fs::remove_dir_all(&blocked).unwrap();
    let old_artifact = std::fs::read(&p.artifact).unwrap();
    std::fs::remove_file(p.out.join("registration.json")).unwrap();
    std::fs::create_dir_all(p.out.join("registration.json/in-the-way")).unwrap();
    let r = ota(&fw_args(t.path(), &p.out, "1"));
    r.expect(2).stderr_has(&["registration.json"]);
    assert_eq!(std::fs::read(&p.artifact).unwrap(), old_artifact);
    assert_eq!(
        std::fs::read(p.out.join("package.json")).unwrap(),
        old_package
    );
    assert_eq!(names(&p.out), ["package.json", "prod", "registration.json"]);
    assert_eq!(names(&p.out.join("prod")), ["yolo-v8n-arm64-1.enc"]);
}

// Item 18.

#[test]
fn unpack_refuses_to_replace_a_symlink_or_a_device_unless_forced() {
    let t = tempfile::tempdir().unwrap();
    let p = packed(t.path(), 20_000, "1");
    let unpack = |out: &Path, more: &[&str]| {
        let mut args = vec![
            "unpack".to_string(),
            "--registration".into(),
            s(&p.out.join("registration.json")),
            "--artifact".into(),
            s(&p.artifact),
            "--out".into(),
            s(out),
        ];
        args.extend(more.iter().map(ToString::to_string));
        ota(&args)
    };
    let victim = t.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let link = t.path().join("link");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    unpack(&link, &[])
        .expect(2)
        .stderr_has(&["link", "symbolic link", "--force"]);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    // A FIFO (a special file as a device is) is not replaced either.
    let fifo = t.path().join("fifo");
    mkfifo(&fifo);
    unpack(&fifo, &[])
        .expect(2)
        .stderr_has(&["fifo", "not a regular file"]);
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    // Forced, the link itself is replaced (never what it points to).
    unpack(&link, &["--force"]).expect(0);
    assert_eq!(std::fs::read(&link).unwrap(), p.image);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
}

// Item 19.

/// Starts `ota unpack --package` of `p` reading its artifact from a FIFO; gives the process
/// and the FIFO's writing end, after half the artifact went through.
fn unpack_from_fifo(t: &Path, p: &Packed, plain: &Path) -> (Child, std::fs::File) {
    let fifo = t.join("artifact.fifo");
    let _ = std::fs::remove_file(&fifo);
    mkfifo(&fifo);
    let reg: Value =
        serde_json::from_slice(&std::fs::read(p.out.join("registration.json")).unwrap()).unwrap();
    let mut child = Command::new(bin())
        .args([
            "unpack",
            "--package",
            &s(&p.out.join("package.json")),
            "--trusted-key",
            &s(&p.public),
            "--artifact",
            &s(&fifo),
            "--out",
            &s(&plain.join("model.bin")),
        ])
        .env("OTA_SEAL_KEY", reg["encryption_key"].as_str().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut w = writer(&fifo, &mut child);
    let bytes = std::fs::read(&p.artifact).unwrap();
    // The pipe holds 64 KiB: past that, ota has read what was written.
    w.write_all(&bytes[..bytes.len() / 2]).unwrap();
    (child, w)
}

/// Makes the FIFO `fifo`.
fn mkfifo(fifo: &Path) {
    assert!(Command::new("mkfifo").arg(fifo).status().unwrap().success());
}

/// Sends `child` the signal `sig` (`INT`, `TERM`).
fn signal(child: &Child, sig: &str) {
    let sent = Command::new("kill")
        .args([format!("-{sig}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{sig}");
}

/// The writing end of `fifo`, once `child` opened it for reading (bounded: a child that ends
/// first fails the test instead of blocking it).
fn writer(fifo: &Path, child: &mut Child) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    const O_NONBLOCK: i32 = 0o4000;
    let start = Instant::now();
    loop {
        // Without a reader, a non-blocking open fails (ENXIO) instead of waiting.
        if let Ok(probe) = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(O_NONBLOCK)
            .open(fifo)
        {
            // Kept open until the blocking end is: the reader never sees no writer (EOF).
            let w = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
            drop(probe);
            return w;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("ota unpack ended before reading its artifact: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "ota unpack never read"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_interrupted_unpack_leaves_no_partial_plaintext() {
    let t = tempfile::tempdir().unwrap();
    let p = packed(t.path(), 6 << 20, "1");
    let plain = t.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    // Killed outright: the plaintext had no name, so nothing remains.
    let (mut child, w) = unpack_from_fifo(t.path(), &p, &plain);
    child.kill().unwrap();
    wait_bounded(&mut child, Duration::from_secs(60), "ota unpack");
    drop(w);
    assert_eq!(names(&plain), Vec::<String>::new());
    // SIGTERM and SIGINT: it stops, and removes what it started.
    for sig in ["TERM", "INT"] {
        let (mut child, w) = unpack_from_fifo(t.path(), &p, &plain);
        signal(&child, sig);
        // A read in progress waits for data: close the pipe.
        drop(w);
        let status = wait_bounded(&mut child, Duration::from_secs(60), "ota unpack");
        assert_eq!(status.code(), Some(2), "SIG{sig}");
        assert_eq!(names(&plain), Vec::<String>::new(), "SIG{sig}");
    }
    // Undisturbed, the same run completes.
    let (mut child, mut w) = unpack_from_fifo(t.path(), &p, &plain);
    let bytes = std::fs::read(&p.artifact).unwrap();
    w.write_all(&bytes[bytes.len() / 2..]).unwrap();
    drop(w);
    assert!(wait_bounded(&mut child, Duration::from_secs(120), "ota unpack").success());
    assert_eq!(std::fs::read(plain.join("model.bin")).unwrap(), p.image);
}

/// The plaintext `ota unpack` writes is made like any new file, 0666 less the umask: a
/// caller whose umask is 077 keeps it to itself.
#[test]
fn the_plaintext_unpack_writes_follows_the_umask() {
    let t = tempfile::tempdir().unwrap();
    let p = packed(t.path(), 100_000, "1");
    let reg: Value =
        serde_json::from_slice(&std::fs::read(p.out.join("registration.json")).unwrap()).unwrap();
    for (umask, expected) in [("077", 0o600), ("022", 0o644), ("027", 0o640)] {
        let out = t.path().join(format!("model-{umask}.bin"));
        let status = Command::new("/bin/sh")
            .args(["-c", &format!("umask {umask}; exec \"$0\" \"$@\"")])
            .arg(bin())
            .args([
                "unpack",
                "--package",
                &s(&p.out.join("package.json")),
                "--trusted-key",
                &s(&p.public),
                "--artifact",
                &s(&p.artifact),
                "--out",
                &s(&out),
            ])
            .env("OTA_SEAL_KEY", reg["encryption_key"].as_str().unwrap())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "umask {umask}");
        assert_eq!(std::fs::read(&out).unwrap(), p.image);
        assert_eq!(mode(&out), expected, "umask {umask}");
    }
}

// Item 20.

#[test]
fn verify_stops_reading_an_endless_artifact() {
    let t = tempfile::tempdir().unwrap();
    let p = packed(t.path(), 10_000, "1");
    let r = ota_bounded(
        &[
            "verify",
            "--package",
            &s(&p.out.join("package.json")),
            "--artifact",
            "/dev/zero",
            "--trusted-key",
            &s(&p.public),
        ],
        Duration::from_secs(120),
    );
    r.expect(1);
    assert!(r.stdout.contains("longer than"), "{}", r.stdout);
}

#[test]
fn every_document_is_bounded_as_it_is_read() {
    let t = tempfile::tempdir().unwrap();
    let r = ota_bounded(
        &["manifest", "validate", "/dev/zero"],
        Duration::from_secs(120),
    );
    r.expect(1)
        .stderr_has(&["/dev/zero", "limit of 1048576 bytes"]);
    let r = ota_bounded(
        &["inspect", "/dev/zero", "--trusted-key", &"0".repeat(64)],
        Duration::from_secs(120),
    );
    r.expect(1).stderr_has(&["/dev/zero", "limit of"]);
    // A key file too.
    let r = ota_bounded(
        &[
            "verify",
            "--package",
            &s(&t.path().join("none.json")),
            "--artifact",
            "/dev/null",
            "--trusted-key",
            "/dev/zero",
        ],
        Duration::from_secs(120),
    );
    r.expect(2).stderr_has(&["/dev/zero"]);
}

// Item 22.

#[test]
fn keys_and_outputs_are_private_whatever_the_umask() {
    let t = tempfile::tempdir().unwrap();
    let keys = t.path().join("new/keys");
    ota_sh(
        "umask 000",
        &["keygen".into(), "--out".into(), s(&keys)],
        &[],
    )
    .expect(0);
    assert_eq!(mode(&keys), 0o700);
    assert_eq!(mode(&t.path().join("new")), 0o700);
    assert_eq!(mode(&keys.join("private.pem")), 0o600);
    assert_eq!(mode(&keys.join("public.pem")), 0o644);
    std::fs::write(t.path().join("image.bin"), b"firmware").unwrap();
    std::fs::create_dir_all(t.path().join("keys")).unwrap();
    std::fs::copy(keys.join("private.pem"), t.path().join("keys/private.pem")).unwrap();
    let out = t.path().join("out");
    ota_sh("umask 000", &fw_args(t.path(), &out, "1"), &[]).expect(0);
    assert_eq!(mode(&out), 0o700);
    assert_eq!(mode(&out.join("prod")), 0o700);
    assert_eq!(mode(&out.join("registration.json")), 0o600);
    assert_eq!(mode(&out.join("package.json")), 0o644);
}

#[test]
fn the_seal_key_is_taken_from_a_file_or_the_environment() {
    let t = tempfile::tempdir().unwrap();
    keygen(t.path(), "keys");
    std::fs::write(t.path().join("image.bin"), ota_tests::noise(5000, 1)).unwrap();
    let key = "ab".repeat(32);
    let out = t.path().join("out");
    let r = ota_env(
        &with(fw_args(t.path(), &out, "1"), &["--reproducible"]),
        &[("OTA_SEAL_KEY", &key)],
    );
    r.expect(0);
    let reg: Value =
        serde_json::from_slice(&std::fs::read(out.join("registration.json")).unwrap()).unwrap();
    assert_eq!(reg["encryption_key"], key.as_str());
    let key_file = t.path().join("aes.key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let plain = t.path().join("plain.bin");
    let unpack = |more: &[&str]| {
        let mut args: Vec<String> = [
            "unpack",
            "--package",
            &s(&out.join("package.json")),
            "--trusted-key",
            &s(&t.path().join("keys/public.pem")),
            "--artifact",
            &s(&out.join("prod/yolo-v8n-arm64-1.enc")),
            "--out",
            &s(&plain),
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        args.extend(more.iter().map(ToString::to_string));
        args
    };
    ota(&unpack(&["--key-file", &s(&key_file)])).expect(0);
    assert_eq!(std::fs::read(&plain).unwrap(), ota_tests::noise(5000, 1));
    std::fs::remove_file(&plain).unwrap();
    ota_env(&unpack(&[]), &[("OTA_SEAL_KEY", &key)]).expect(0);
    // No key at all is a usage error that says where a key may come from.
    ota(&unpack(&[]))
        .expect(2)
        .stderr_has(&["--key-file", "OTA_SEAL_KEY"]);
    // pack --seal-key-file gives the same bytes as the environment did.
    let again = t.path().join("again");
    ota(&with(
        fw_args(t.path(), &again, "1"),
        &["--reproducible", "--seal-key-file", &s(&key_file)],
    ))
    .expect(0);
    assert_eq!(
        std::fs::read(again.join("prod/yolo-v8n-arm64-1.enc")).unwrap(),
        std::fs::read(out.join("prod/yolo-v8n-arm64-1.enc")).unwrap()
    );
}

// Items 23 and 24.

#[test]
fn a_full_disk_is_blamed_on_the_output_and_leaves_no_new_directory() {
    let t = tempfile::tempdir().unwrap();
    let p = packed(t.path(), 300_000, "1");
    // A file size limit (SIGXFSZ ignored) makes every write past 64 KiB fail, as a full disk.
    let full = "trap '' XFSZ; ulimit -f 128";
    let plain = t.path().join("new/dir/model.bin");
    let r = ota_sh(
        full,
        &[
            "unpack".into(),
            "--registration".into(),
            s(&p.out.join("registration.json")),
            "--artifact".into(),
            s(&p.artifact),
            "--out".into(),
            s(&plain),
        ],
        &[],
    );
    r.expect(2).stderr_has(&["model.bin"]);
    assert!(!r.stderr.contains(".enc"), "{}", r.stderr);
    assert!(
        !t.path().join("new").exists(),
        "a new directory stayed behind"
    );
    let out = t.path().join("fresh/out");
    let r = ota_sh(full, &fw_args(t.path(), &out, "1"), &[]);
    r.expect(2).stderr_has(&["yolo-v8n-arm64-1.enc"]);
    assert!(!r.stderr.contains("image.bin"), "{}", r.stderr);
    assert!(
        !t.path().join("fresh").exists(),
        "a new directory stayed behind"
    );
}

#[test]
fn a_failed_unpack_leaves_no_new_directory() {
    let t = tempfile::tempdir().unwrap();
    let p = packed(t.path(), 10_000, "1");
    let mut bytes = std::fs::read(&p.artifact).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&p.artifact, bytes).unwrap();
    ota(&[
        "unpack",
        "--registration",
        &s(&p.out.join("registration.json")),
        "--artifact",
        &s(&p.artifact),
        "--out",
        &s(&t.path().join("a/b/model.bin")),
    ])
    .expect(1);
    assert!(!t.path().join("a").exists());
}

#[test]
fn a_mistyped_key_path_is_named_with_its_flag() {
    let t = tempfile::tempdir().unwrap();
    let p = packed(t.path(), 10_000, "1");
    let r = ota(&[
        "verify",
        "--package",
        &s(&p.out.join("package.json")),
        "--artifact",
        &s(&p.artifact),
        "--trusted-key",
        "keys/pubic.pem",
    ]);
    r.expect(2)
        .stderr_has(&["--trusted-key keys/pubic.pem", "No such file"]);
    let r = ota(&[
        "unpack",
        "--package",
        &s(&p.out.join("package.json")),
        "--trusted-key",
        &s(&p.public),
        "--key",
        "secrets/aes.kye",
        "--artifact",
        &s(&p.artifact),
        "--out",
        &s(&t.path().join("m.bin")),
    ]);
    r.expect(2)
        .stderr_has(&["--key secrets/aes.kye", "No such file"]);
    // pack's key flag is --seal-key, and its errors say so.
    let r = ota(&with(
        fw_args(t.path(), &t.path().join("o2"), "1"),
        &["--seal-key", "abcd"],
    ));
    r.expect(2).stderr_has(&["--seal-key"]);
    assert!(!r.stderr.contains("--key:"), "{}", r.stderr);
    let r = ota(&with(
        fw_args(t.path(), &t.path().join("o2"), "1"),
        &["--seal-key", "aes.kye"],
    ));
    r.expect(2)
        .stderr_has(&["--seal-key aes.kye", "No such file"]);
}

#[test]
fn a_manifest_with_a_byte_order_mark_is_read() {
    let t = tempfile::tempdir().unwrap();
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend(std::fs::read(common::fixture("manifests/valid/tensorrt-orin-nx.json")).unwrap());
    let f = t.path().join("m.json");
    std::fs::write(&f, &bytes).unwrap();
    ota(&["manifest", "validate", &s(&f)]).expect(0);
    // And before YAML.
    let f = t.path().join("m");
    std::fs::write(&f, b"\xEF\xBB\xBFname: [x\n").unwrap();
    let r = ota(&["manifest", "validate", &s(&f)]);
    r.expect(1).stderr_has(&["YAML"]);
}

/// An answer that cannot be written whole (a full disk behind `>`, a closed pipe) fails the
/// command with 2 and says so on stderr: a truncated answer never passes for a complete one.
#[test]
fn an_answer_stdout_cannot_take_fails_the_command() {
    let t = tempfile::tempdir().unwrap();
    for json in [false, true] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let dir = t.path().join(format!("keys-{json}"));
        let mut c = Command::new(bin());
        c.args(["keygen", "--out", &s(&dir)]);
        if json {
            c.arg("--json");
        }
        let out = c.stdout(full).stderr(Stdio::piped()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "json {json}: {stderr}");
        assert!(stderr.contains("stdout"), "json {json}: {stderr}");
    }
}

/// SIGINT or SIGTERM in the middle of `ota pack`: it stops through its failure path, so its
/// temporary files (the partial artifact; a model's plaintext tar) and the directories it
/// made are gone, and it exits 2.
#[test]
fn an_interrupted_pack_leaves_no_temporary_file_and_no_new_directory() {
    let t = tempfile::tempdir().unwrap();
    keygen(t.path(), "keys");
    let fifo = t.path().join("image.fifo");
    mkfifo(&fifo);
    for sig in ["INT", "TERM"] {
        let out = t.path().join(format!("out-{sig}"));
        let mut args = fw_args(t.path(), &out, "1");
        let file = args.iter().position(|a| a == "--file").unwrap();
        args[file + 1] = s(&fifo);
        let mut child = Command::new(bin())
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut w = writer(&fifo, &mut child);
        // More than the pipe holds: once written, ota has read (and sealed) most of it.
        w.write_all(&vec![7u8; 1 << 20]).unwrap();
        signal(&child, sig);
        // A read in progress waits for data: close the pipe.
        drop(w);
        let status = wait_bounded(&mut child, Duration::from_secs(60), "ota pack");
        assert_eq!(status.code(), Some(2), "SIG{sig}");
        assert!(!out.exists(), "SIG{sig}: {:?}", names(&out));
    }
}

/// A command blocked where no read checks for a signal (opening a FIFO no one writes to) is
/// ended by a second SIGINT (exit 130); the first one only asks it to stop. It ignored both.
#[test]
fn a_second_sigint_ends_a_command_blocked_opening_a_fifo() {
    let t = tempfile::tempdir().unwrap();
    keygen(t.path(), "keys");
    let fifo = t.path().join("image.fifo");
    mkfifo(&fifo);
    let out = t.path().join("out");
    let mut args = fw_args(t.path(), &out, "1");
    let file = args.iter().position(|a| a == "--file").unwrap();
    args[file + 1] = s(&fifo);
    let mut child = Command::new(bin())
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Signals are handled once the command started (its keys read): until then the first
    // SIGINT would end it at once, which proves nothing.
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "it waits for a writer");
    signal(&child, "INT");
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "INT");
    let status = wait_bounded(&mut child, Duration::from_secs(30), "ota pack");
    // (On a machine slow enough that the first signal came before the handler, it ended
    // that one's default way.)
    use std::os::unix::process::ExitStatusExt;
    assert!(
        status.code() == Some(130) || status.signal() == Some(2),
        "{status}"
    );
}

/// SIGINT during the live demo: the agents and the in-process server stop, and its temporary
/// work directory (keys, the server's database, every device's slots) is removed.
#[test]
fn an_interrupted_demo_removes_its_work_directory() {
    let t = tempfile::tempdir().unwrap();
    let tmpdir = t.path().join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    // Devices that poll every 30 s: the rollout is far from done when the signal comes.
    let (mut child, _) = demo_until(
        &["--devices", "10", "--model-mb", "0.2", "--poll-ms", "30000"],
        &tmpdir,
        "agents",
        false,
    );
    assert_eq!(names(&tmpdir).len(), 1, "its work directory");
    signal(&child, "INT");
    let status = wait_bounded(&mut child, Duration::from_secs(120), "ota demo");
    assert_eq!(status.code(), Some(2));
    assert_eq!(names(&tmpdir), Vec::<String>::new());
}

/// SIGINT during the simulated demo, or its stdout closed (`ota demo --simulate | head`): it
/// stops between two steps through its failure path, with a line saying why and no panic, and
/// its temporary work directory (the models and their sealed copies) is removed.
#[test]
fn an_interrupted_or_unread_simulation_stops_and_removes_its_work_directory() {
    for how in ["signal", "pipe"] {
        let t = tempfile::tempdir().unwrap();
        let tmpdir = t.path().join("tmp");
        std::fs::create_dir(&tmpdir).unwrap();
        let unread = how == "pipe";
        let (mut child, err) = demo_until(
            &["--simulate", "--devices", "100000", "--model-mb", "1"],
            &tmpdir,
            "wave ",
            unread,
        );
        if how == "signal" {
            signal(&child, "INT");
        }
        let status = wait_bounded(&mut child, Duration::from_secs(120), "ota demo --simulate");
        let stderr = err.join().unwrap();
        assert_eq!(status.code(), Some(2), "{how}: {stderr}");
        let why = if unread {
            "stdout was closed"
        } else {
            "interrupted by a signal"
        };
        assert!(
            stderr.contains(why) && !stderr.contains("panicked"),
            "{how}: {stderr}"
        );
        assert_eq!(names(&tmpdir), Vec::<String>::new(), "{how}");
    }
}

/// `ota unpack --out` naming the artifact itself (or a link to it) is refused: the sealed
/// artifact would be replaced by its plaintext.
#[test]
fn unpack_refuses_to_write_over_its_own_artifact() {
    let t = tempfile::tempdir().unwrap();
    let p = packed(t.path(), 100_000, "1");
    let reg = s(&p.out.join("registration.json"));
    let sealed = std::fs::read(&p.artifact).unwrap();
    let link = t.path().join("link.enc");
    std::os::unix::fs::symlink(&p.artifact, &link).unwrap();
    for out in [p.artifact.clone(), link] {
        ota(&[
            "unpack",
            "--registration",
            &reg,
            "--artifact",
            &s(&p.artifact),
            "--out",
            &s(&out),
            "--force",
        ])
        .expect(2)
        .stderr_has(&["is --artifact"]);
        assert!(std::fs::read(&p.artifact).unwrap() == sealed);
    }
}

/// An argument that is not UTF-8 (a Linux path may be any bytes) is an argument like any
/// other: a path is used as it is, and nothing panics (it exited 101 with a panic message,
/// and no JSON under --json).
#[test]
fn an_argument_that_is_not_utf8_is_taken_as_the_os_gives_it() {
    use std::os::unix::ffi::OsStrExt;
    let t = tempfile::tempdir().unwrap();
    let odd = t.path().join(std::ffi::OsStr::from_bytes(b"a\xff"));
    let p = packed(t.path(), 100_000, "1");
    for json in [false, true] {
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        if json {
            args.push("--json".into());
        }
        for a in ["verify", "--package"] {
            args.push(a.into());
        }
        args.push(p.out.join("package.json").into());
        args.push("--artifact".into());
        args.push(odd.clone().into());
        args.push("--trusted-key".into());
        args.push(p.public.clone().into());
        let r = ota(&args);
        r.expect(2);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        assert!(
            r.stderr.contains("a\u{fffd}"),
            "names the path: {}",
            r.stderr
        );
        if json {
            assert_eq!(r.json()["exit_code"], 2);
        }
    }
    // The artifact under that name verifies.
    std::fs::copy(&p.artifact, &odd).unwrap();
    let args: Vec<std::ffi::OsString> = vec![
        "verify".into(),
        "--package".into(),
        p.out.join("package.json").into(),
        "--artifact".into(),
        odd.into(),
        "--trusted-key".into(),
        p.public.into(),
    ];
    ota(&args).expect(0);
}

/// `ota tuf create-repo --repo repo`, as README.md writes it, with the repository a bare
/// name in the current directory (syncing its parent, "", failed and left half a repository).
#[test]
fn a_tuf_repository_named_by_a_bare_name_is_created() {
    let t = tempfile::tempdir().unwrap();
    let key = keygen(t.path(), "keys");
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("ota");
    let out = cmd
        .current_dir(t.path())
        .args(["tuf", "create-repo", "--repo", "repo", "--key"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(t.path().join("repo/metadata/1.root.json").is_file());
}

/// `ota verify` with the AES key hashes the plaintext it opens and compares it with the
/// signed seal.plaintext_sha256: a statement whose digest does not match its artifact (signed
/// by a trusted key) fails, naming the field. It said "matching the signed plaintext digest"
/// without computing one.
#[test]
fn verify_with_the_key_checks_the_signed_plaintext_digest() {
    let t = tempfile::tempdir().unwrap();
    let p = packed(t.path(), 100_000, "1");
    let reg: Value =
        serde_json::from_slice(&std::fs::read(p.out.join("registration.json")).unwrap()).unwrap();
    let key = reg["encryption_key"].as_str().unwrap().to_string();
    let mut statement: Value = serde_json::from_slice(&statement_of(&p)).unwrap();
    let verify = |package: &Path| {
        ota(&[
            "verify",
            "--package",
            &s(package),
            "--artifact",
            &s(&p.artifact),
            "--trusted-key",
            &s(&p.public),
            "--key",
            &key,
        ])
    };
    let good = verify(&p.out.join("package.json"));
    good.expect(0);
    assert!(
        good.stdout.contains(
            &statement["seal"]["plaintext_sha256"]
                .as_str()
                .unwrap()
                .to_string()
        ),
        "{}",
        good.stdout
    );
    statement["seal"]["plaintext_sha256"] =
        Value::String(ota_core::Sha256Digest::of(b"evil").to_hex());
    let edited = t.path().join("statement.json");
    std::fs::write(&edited, statement.to_string()).unwrap();
    let bad = t.path().join("bad.json");
    ota(&[
        "sign",
        &s(&edited),
        "--key",
        &s(&t.path().join("keys/private.pem")),
        "--out",
        &s(&bad),
    ])
    .expect(0);
    let r = verify(&bad);
    r.expect(1);
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(said.contains("seal.plaintext_sha256"), "{said}");
}

/// `ota sign --out` does not replace what is not a regular file (a FIFO would block it, a
/// symbolic link would be replaced by a file); it did, silently, where `unpack` refused.
#[test]
fn sign_refuses_to_replace_a_fifo_or_a_symbolic_link() {
    let t = tempfile::tempdir().unwrap();
    let p = packed(t.path(), 100_000, "1");
    let statement = t.path().join("statement.json");
    std::fs::write(&statement, statement_of(&p)).unwrap();
    let fifo = t.path().join("out.fifo");
    mkfifo(&fifo);
    let link = t.path().join("out.link");
    std::os::unix::fs::symlink(t.path().join("elsewhere.json"), &link).unwrap();
    for out in [&fifo, &link] {
        let r = ota(&[
            "sign",
            &s(&statement),
            "--key",
            &s(&t.path().join("keys/private.pem")),
            "--out",
            &s(out),
        ]);
        r.expect(2);
        assert!(
            r.stderr.contains("--out") && r.stderr.contains("not replaced"),
            "{}",
            r.stderr
        );
    }
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(!t.path().join("elsewhere.json").exists());
}

/// The signed statement of `p`'s envelope (its payload, decoded).
fn statement_of(p: &Packed) -> Vec<u8> {
    use base64::Engine as _;
    let envelope: Value =
        serde_json::from_slice(&std::fs::read(p.out.join("package.json")).unwrap()).unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap()
}

/// Starts `ota demo ARGS` with its temporary files in `tmpdir` and waits (at most 300 s) for a
/// line of its transcript starting with `prefix`; then stops reading its stdout when `unread`
/// (as `head` does), or reads on. The demo, and a thread collecting its stderr.
fn demo_until(
    args: &[&str],
    tmpdir: &Path,
    prefix: &'static str,
    unread: bool,
) -> (Child, std::thread::JoinHandle<String>) {
    let mut child = Command::new(bin())
        .arg("demo")
        .args(args)
        .env("TMPDIR", tmpdir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with(prefix) {
                let _ = tx.send(());
                if unread {
                    return;
                }
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(300)).is_err() {
        let _ = child.kill();
        panic!("ota demo {args:?} never printed a line starting with {prefix:?}");
    }
    (child, err)
}
