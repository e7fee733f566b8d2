//! The `ota` command end to end: every command, its failure exit codes (1 for a failed check,
//! 2 for usage and I/O), the no-partial-output rule of `unpack`, publishing to a local store,
//! to an S3-compatible server (moto, on loopback) and to an admin API (a local HTTP server),
//! the live demo (a server and real agents on loopback) and the simulated one, each
//! deterministic in its counts per seed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

mod common;

use common::{Run, ota, ota_env};
use ota_tests::noise;
use serde_json::Value;

fn fixture(rel: &str) -> String {
    ota_tests::fixture(rel).display().to_string()
}

fn expect(r: &Run, code: i32) {
    assert_eq!(
        r.code, code,
        "exit code\nstdout: {}\nstderr: {}",
        r.stdout, r.stderr
    );
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Deterministic, poorly compressible bytes.
/// A key pair, a 300 KB engine, and `ota pack` of it into `dir/out`.
struct Packed {
    dir: tempfile::TempDir,
    engine: Vec<u8>,
    out: PathBuf,
    artifact: PathBuf,
    public: String,
}

/// `ota verify` of the package `env` and its `artifact` against the key `trusted`, then
/// `extra`.
fn verify(env: &str, artifact: &str, trusted: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "verify",
        "--package",
        env,
        "--artifact",
        artifact,
        "--trusted-key",
        trusted,
    ];
    args.extend(extra);
    ota(&args)
}

/// The arguments of `ota unpack` of the package `env`, signed by `trusted` and sealed with
/// `key`, from `artifact` into `out`.
fn unpack_package<'a>(
    env: &'a str,
    trusted: &'a str,
    key: &'a str,
    artifact: &'a str,
    out: &'a str,
) -> Vec<&'a str> {
    vec![
        "unpack",
        "--package",
        env,
        "--trusted-key",
        trusted,
        "--key",
        key,
        "--artifact",
        artifact,
        "--out",
        out,
    ]
}

fn keygen(dir: &Path) -> String {
    let r = ota(&["keygen", "--out", &s(&dir.join("keys")), "--json"]);
    expect(&r, 0);
    s(&dir.join("keys/public.pem"))
}

/// A manifest for `file` alone: the TensorRT fixture with `files[]` describing `file`'s bytes
/// (`ota pack` refuses a file its manifest does not describe). Written beside `file`.
fn manifest_for(file: &Path) -> String {
    let bytes = std::fs::read(file).unwrap();
    let mut m: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("manifests/valid/tensorrt-orin-nx.json")).unwrap(),
    )
    .unwrap();
    m["files"] = serde_json::json!([{"path": "model/yolo-v8n.engine", "role": "engine",
        "size_bytes": bytes.len(), "sha256": ota_core::digest::Sha256Digest::of(&bytes).to_hex()}]);
    m.as_object_mut().unwrap().remove("sbom");
    let path = file.with_extension("manifest.json");
    std::fs::write(&path, m.to_string()).unwrap();
    s(&path)
}

fn pack(extra: &[&str]) -> Packed {
    pack_sized(300_000, extra)
}

/// `ota pack` of an engine of `size` bytes of noise, then `extra`.
fn pack_sized(size: usize, extra: &[&str]) -> Packed {
    let dir = tmp();
    let public = keygen(dir.path());
    let engine = noise(size, 7);
    std::fs::write(dir.path().join("model.engine"), &engine).unwrap();
    let out = dir.path().join("out");
    let mut args = vec![
        "pack".to_string(),
        "--file".into(),
        s(&dir.path().join("model.engine")),
        "--manifest".into(),
        manifest_for(&dir.path().join("model.engine")),
        "--key".into(),
        s(&dir.path().join("keys/private.pem")),
        "--resource-name".into(),
        "yolo-v8n".into(),
        "--dev-stage".into(),
        "prod".into(),
        "--architecture".into(),
        "arm64".into(),
        "--version".into(),
        "2026-04-15".into(),
        "--out".into(),
        s(&out),
        "--json".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = ota(&argv);
    expect(&r, 0);
    let j = r.json();
    assert_eq!(j["object_key"], "prod/yolo-v8n-arm64-2026-04-15.enc");
    let artifact = out.join("prod/yolo-v8n-arm64-2026-04-15.enc");
    assert!(artifact.is_file());
    Packed {
        dir,
        engine,
        out,
        artifact,
        public,
    }
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    expect(&ota::<&str>(&[]), 2);
    expect(&ota(&["frobnicate"]), 2);
    expect(&ota(&["check", "--package", "x.json"]), 2); // neither --device nor --fleet
    expect(&ota(&["--help"]), 0);
    expect(&ota(&["demo", "--canary", "0"]), 2);
    // More real agents than the live demo runs: a usage error that names the flag.
    let r = ota(&["demo", "--devices", "5000"]);
    expect(&r, 2);
    assert!(
        r.stderr.contains("--devices") && r.stderr.contains("--simulate"),
        "{}",
        r.stderr
    );
    let r = ota(&["manifest", "validate", "/nonexistent/manifest.json"]);
    expect(&r, 2);
    assert!(
        r.stderr.contains("/nonexistent/manifest.json"),
        "{}",
        r.stderr
    );
    let r = ota(&[
        "manifest",
        "validate",
        "/nonexistent/manifest.json",
        "--json",
    ]);
    assert_eq!(r.json()["exit_code"], 2);
}

#[test]
fn keygen_writes_a_pair_and_will_not_overwrite_it() {
    let dir = tmp();
    let keys = s(&dir.path().join("k"));
    let r = ota(&["keygen", "--out", &keys, "--json"]);
    expect(&r, 0);
    let j = r.json();
    assert_eq!(j["key_id"].as_str().unwrap().len(), 64);
    let pem = std::fs::read_to_string(dir.path().join("k/private.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("k/private.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the private key is owner-only");
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("k/keyid"))
            .unwrap()
            .trim(),
        j["key_id"].as_str().unwrap()
    );
    let again = ota(&["keygen", "--out", &keys]);
    expect(&again, 2);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
    expect(&ota(&["keygen", "--out", &keys, "--force"]), 0);
}

#[test]
fn manifest_validate_lists_every_fault() {
    let r = ota(&[
        "manifest",
        "validate",
        &fixture("manifests/valid/tensorrt-orin-nx.json"),
    ]);
    expect(&r, 0);
    assert!(
        r.stdout.contains("valid: yolo-v8n 2.1.0 (tensorrt"),
        "{}",
        r.stdout
    );
    // A manifest with several rule faults: each is listed with its field.
    let dir = tmp();
    let mut m: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("manifests/valid/tensorrt-orin-nx.json")).unwrap(),
    )
    .unwrap();
    m["targets"][0]["min_memory_mb"] = 0.into();
    m["precision"] = serde_json::json!([]);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, m.to_string()).unwrap();
    let r = ota(&["manifest", "validate", &s(&bad), "--json"]);
    expect(&r, 1);
    let faults = r.json()["faults"].as_array().unwrap().clone();
    assert!(faults.len() >= 2, "{faults:?}");
    let paths: Vec<&str> = faults.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["precision", "targets[0].min_memory_mb"]);
    let r = ota(&[
        "manifest",
        "validate",
        &fixture("manifests/invalid/channel-unknown.json"),
    ]);
    expect(&r, 1);
    assert!(r.stdout.contains("channel"), "{}", r.stdout);
}

#[test]
fn check_gives_the_verdict_with_every_reason_and_fleet_counts() {
    let pkg = fixture("packages/valid/model-tensorrt-orin-nx.json");
    let r = ota(&[
        "check",
        "--package",
        &pkg,
        "--device",
        &fixture("profiles/valid/orin-nx-line-camera.json"),
    ]);
    expect(&r, 0);
    assert!(r.stdout.contains("fits jetson-line7-01"), "{}", r.stdout);
    let r = ota(&[
        "check",
        "--package",
        &pkg,
        "--device",
        &fixture("profiles/valid/xavier-nx-one-dla.json"),
        "--json",
    ]);
    expect(&r, 1);
    let j = r.json();
    assert_eq!(j["compatible"], false);
    assert!(!j["rejections"].as_array().unwrap().is_empty());

    let dir = tmp();
    let fleet: Vec<Value> = [
        "orin-nx-line-camera",
        "xavier-nx-one-dla",
        "custom-npu-board",
    ]
    .iter()
    .map(|f| {
        serde_json::from_str(
            &std::fs::read_to_string(fixture(&format!("profiles/valid/{f}.json"))).unwrap(),
        )
        .unwrap()
    })
    .collect();
    let fleet_file = dir.path().join("fleet.json");
    std::fs::write(&fleet_file, serde_json::to_string(&fleet).unwrap()).unwrap();
    let r = ota(&[
        "check",
        "--package",
        &pkg,
        "--fleet",
        &s(&fleet_file),
        "--json",
    ]);
    expect(&r, 0);
    let j = r.json();
    assert_eq!(
        (
            j["total"].as_u64(),
            j["eligible"].as_u64(),
            j["rejected"].as_u64()
        ),
        (Some(3), Some(1), Some(2))
    );
    assert!(!j["reasons"].as_object().unwrap().is_empty());
    // A malformed profile names its field.
    std::fs::write(&fleet_file, r#"[{"device_id": "x"}]"#).unwrap();
    let r = ota(&["check", "--package", &pkg, "--fleet", &s(&fleet_file)]);
    expect(&r, 1);
    assert!(
        r.stderr.contains("fleet.json") && r.stderr.contains("missing field"),
        "{}",
        r.stderr
    );
}

#[test]
fn pack_verify_inspect_and_unpack_round_trip() {
    let p = pack(&[]);
    let env = s(&p.out.join("package.json"));
    let art = s(&p.artifact);
    // The registration record is seed 002's, owner-only.
    let reg: Value =
        serde_json::from_str(&std::fs::read_to_string(p.out.join("registration.json")).unwrap())
            .unwrap();
    for f in [
        "resource_name",
        "dev_stage",
        "architecture",
        "version",
        "cdn_url",
        "sha256",
        "encryption_key",
        "size_bytes",
    ] {
        assert!(reg.get(f).is_some(), "registration lacks {f}");
    }
    assert_eq!(
        reg["size_bytes"].as_u64().unwrap(),
        std::fs::metadata(&p.artifact).unwrap().len()
    );

    let r = verify(&env, &art, &p.public, &["--json"]);
    expect(&r, 0);
    assert_eq!(r.json()["chunks"], 5);
    let key = reg["encryption_key"].as_str().unwrap();
    expect(&verify(&env, &art, &p.public, &["--key", key]), 0);

    let r = ota(&["inspect", &env]);
    expect(&r, 0);
    assert!(
        r.stdout.contains("yolo-v8n 2.1.0") && r.stdout.contains("not verified"),
        "{}",
        r.stdout
    );
    let r = ota(&["inspect", &env, "--trusted-key", &p.public, "--json"]);
    expect(&r, 0);
    assert_eq!(r.json()["verified"], true);

    // Unpack with the registration record alone, and with the signed package.
    let plain = p.dir.path().join("plain.engine");
    let r = ota(&[
        "unpack",
        "--registration",
        &s(&p.out.join("registration.json")),
        "--artifact",
        &art,
        "--out",
        &s(&plain),
    ]);
    expect(&r, 0);
    assert_eq!(std::fs::read(&plain).unwrap(), p.engine);
    let plain2 = p.dir.path().join("plain2.engine");
    let r = ota(&unpack_package(&env, &p.public, key, &art, &s(&plain2)));
    expect(&r, 0);
    assert_eq!(std::fs::read(&plain2).unwrap(), p.engine);
}

#[test]
fn a_package_of_several_segments_unpacks_on_one_thread_or_two() {
    let p = pack_sized(2_500_000, &[]);
    let env = s(&p.out.join("package.json"));
    let statement = ota(&["inspect", &env, "--trusted-key", &p.public, "--json"]);
    expect(&statement, 0);
    let reg: Value =
        serde_json::from_str(&std::fs::read_to_string(p.out.join("registration.json")).unwrap())
            .unwrap();
    let key = reg["encryption_key"].as_str().unwrap();
    for threads in ["1", "2"] {
        let plain = p.dir.path().join(format!("plain-{threads}.engine"));
        let (artifact, out) = (s(&p.artifact), s(&plain));
        let mut args = unpack_package(&env, &p.public, key, &artifact, &out);
        args.extend(["--threads", threads]);
        let r = ota(&args);
        expect(&r, 0);
        assert_eq!(
            std::fs::read(&plain).unwrap(),
            p.engine,
            "--threads {threads}"
        );
    }
    // The signed statement says where its three segments start.
    let segments = &statement.json()["package"]["seal"]["segments"];
    assert_eq!(segments["plaintext_size"], 1 << 20);
    assert_eq!(segments["offsets"].as_array().unwrap().len(), 2);
}

#[test]
fn verify_names_the_bad_chunk_and_the_failed_signature() {
    let p = pack(&[]);
    let env = s(&p.out.join("package.json"));
    let bad = p.dir.path().join("bad.enc");
    let mut bytes = std::fs::read(&p.artifact).unwrap();
    bytes[2 * 65536 + 100] ^= 1;
    std::fs::write(&bad, &bytes).unwrap();
    let r = verify(&env, &s(&bad), &p.public, &["--json"]);
    expect(&r, 1);
    let j = r.json();
    assert_eq!(j["bad_chunks"], serde_json::json!([2]));
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .contains("chunk 2 (bytes 131072..196608)"),
        "{j}"
    );
    // Truncated.
    std::fs::write(&bad, &bytes[..100_000]).unwrap();
    let r = verify(&env, &s(&bad), &p.public, &[]);
    expect(&r, 1);
    assert!(r.stdout.contains("declares"), "{}", r.stdout);
    // Another key: the threshold is not met.
    let other = keygen(&p.dir.path().join("other"));
    let r = verify(&env, &s(&p.artifact), &other, &[]);
    expect(&r, 1);
    assert!(
        r.stderr.contains("package.json") && r.stderr.contains("trusted keys needed"),
        "{}",
        r.stderr
    );
    let r = ota(&["inspect", &env, "--trusted-key", &other]);
    expect(&r, 1);
    // With --json, its error names the file, as every command's does.
    let r = ota(&["inspect", &env, "--trusted-key", &other, "--json"]);
    expect(&r, 1);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.starts_with(&format!("{env}: "))),
        "{v}"
    );
    // A key that is not a key is a usage error.
    expect(&verify(&env, &s(&p.artifact), "beef", &[]), 2);
}

#[test]
fn unpack_leaves_nothing_behind_on_any_failure() {
    let p = pack(&[]);
    let reg = s(&p.out.join("registration.json"));
    let env = s(&p.out.join("package.json"));
    let out = p.dir.path().join("plain.engine");
    let mut bytes = std::fs::read(&p.artifact).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let bad = p.dir.path().join("bad.enc");
    std::fs::write(&bad, &bytes).unwrap();
    let entries = |d: &Path| std::fs::read_dir(d).unwrap().count();
    let before = entries(p.dir.path());
    for args in [
        vec![
            "unpack",
            "--registration",
            &reg,
            "--artifact",
            bad.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        unpack_package(
            &env,
            &p.public,
            &"11".repeat(32),
            p.artifact.to_str().unwrap(),
            out.to_str().unwrap(),
        ),
        unpack_package(
            &env,
            &p.public,
            &"11".repeat(32),
            bad.to_str().unwrap(),
            out.to_str().unwrap(),
        ),
    ] {
        let r = ota(&args);
        expect(&r, 1);
        assert!(!out.exists(), "{args:?} left {}", out.display());
        assert_eq!(
            entries(p.dir.path()),
            before,
            "{args:?} left a temporary file"
        );
    }
    // An existing output is not touched by a failure.
    std::fs::write(&out, b"previous").unwrap();
    let r = ota(&[
        "unpack",
        "--registration",
        &reg,
        "--artifact",
        &s(&bad),
        "--out",
        &s(&out),
    ]);
    expect(&r, 1);
    assert!(
        r.stderr.contains("bad.enc") && r.stderr.contains("sha256"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"previous");
    // --package needs the key and a trusted key.
    expect(
        &ota(&[
            "unpack",
            "--package",
            &env,
            "--artifact",
            &s(&p.artifact),
            "--out",
            &s(&out),
        ]),
        2,
    );
}

#[test]
fn pack_signs_a_bound_rollback_and_a_probe_that_inspect_shows() {
    let probes = tmp();
    let probe = probes.path().join("probe.json");
    std::fs::write(
        &probe,
        r#"{"kind": "exec", "path": "/usr/bin/app-health", "args": ["--deep"], "timeout_ms": 5000}"#,
    )
    .unwrap();
    let p = pack(&[
        "--rollback-from",
        "3.0.0",
        "--rollback-expires",
        "2030-01-31T00:00:00Z",
        "--probe",
        &s(&probe),
    ]);
    let env = s(&p.out.join("package.json"));
    let r = ota(&["inspect", &env, "--trusted-key", &p.public]);
    expect(&r, 0);
    assert!(
        r.stdout
            .contains("rollback      from 3.0.0 until 2030-01-31T00:00:00Z"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("probe") && r.stdout.contains("/usr/bin/app-health"),
        "{}",
        r.stdout
    );
    let r = ota(&["inspect", &env, "--json"]);
    let j = r.json();
    assert_eq!(j["package"]["rollback"]["from"], "3.0.0");
    assert_eq!(j["package"]["probe"]["args"][0], "--deep");

    // Each flag's mistake is named; a launcher is no probe.
    let shell = probes.path().join("shell.json");
    std::fs::write(
        &shell,
        r#"{"kind": "exec", "path": "/usr/bin/env", "args": ["sh", "-c", "reboot"], "timeout_ms": 5000}"#,
    )
    .unwrap();
    for (extra, flag) in [
        (vec!["--rollback-from", "3.0.0"], "--rollback-expires"),
        (
            vec![
                "--rollback-from",
                "3.0.0",
                "--rollback-expires",
                "next week",
            ],
            "--rollback-expires",
        ),
        (
            vec![
                "--rollback-from",
                "three",
                "--rollback-expires",
                "2030-01-31T00:00:00Z",
            ],
            "--rollback-from",
        ),
        (vec!["--probe", &s(&shell)], "interpreter"),
    ] {
        let mut args = vec![
            "pack".to_string(),
            "--file".into(),
            s(&p.dir.path().join("model.engine")),
            "--manifest".into(),
            manifest_for(&p.dir.path().join("model.engine")),
            "--key".into(),
            s(&p.dir.path().join("keys/private.pem")),
            "--resource-name".into(),
            "m".into(),
            "--dev-stage".into(),
            "prod".into(),
            "--architecture".into(),
            "arm64".into(),
            "--version".into(),
            "1".into(),
            "--out".into(),
            s(&p.dir.path().join("out3")),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let r = ota(&args.iter().map(String::as_str).collect::<Vec<_>>());
        expect(&r, 2);
        assert!(r.stderr.contains(flag), "{flag}: {}", r.stderr);
    }
}

#[test]
fn pack_is_reproducible_with_a_seal_key_and_refuses_bad_input() {
    let key = "42".repeat(32);
    let a = pack(&["--reproducible", "--seal-key", &key]);
    // Packed again into the same place (the artifact's URL is part of the statement).
    let first = std::fs::read(&a.artifact).unwrap();
    let first_env = std::fs::read(a.out.join("package.json")).unwrap();
    std::fs::remove_dir_all(&a.out).unwrap();
    let b_out = a.out.clone();
    let r = ota(&[
        "pack",
        "--file",
        &s(&a.dir.path().join("model.engine")),
        "--manifest",
        &manifest_for(&a.dir.path().join("model.engine")),
        "--key",
        &s(&a.dir.path().join("keys/private.pem")),
        "--resource-name",
        "yolo-v8n",
        "--dev-stage",
        "prod",
        "--architecture",
        "arm64",
        "--version",
        "2026-04-15",
        "--out",
        &s(&b_out),
        "--reproducible",
        "--seal-key",
        &key,
    ]);
    expect(&r, 0);
    assert!(
        first == std::fs::read(&a.artifact).unwrap(),
        "the same artifact"
    );
    assert!(
        first_env == std::fs::read(b_out.join("package.json")).unwrap(),
        "the same envelope"
    );

    let base = |manifest: &str, name: &str| {
        vec![
            "pack".to_string(),
            "--file".into(),
            s(&a.dir.path().join("model.engine")),
            "--manifest".into(),
            manifest.into(),
            "--key".into(),
            s(&a.dir.path().join("keys/private.pem")),
            "--resource-name".into(),
            name.into(),
            "--dev-stage".into(),
            "prod".into(),
            "--architecture".into(),
            "arm64".into(),
            "--version".into(),
            "1".into(),
            "--out".into(),
            s(&a.dir.path().join("out2")),
        ]
    };
    let run = |args: Vec<String>| ota(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // --reproducible needs --seal-key.
    let mut args = base(&fixture("manifests/valid/tensorrt-orin-nx.json"), "m");
    args.push("--reproducible".into());
    expect(&run(args), 2);
    let r = run(base(
        &fixture("manifests/valid/tensorrt-orin-nx.json"),
        "has space",
    ));
    expect(&r, 2);
    assert!(r.stderr.contains("--resource-name"), "{}", r.stderr);
    let r = run(base(
        &fixture("manifests/invalid/channel-unknown.json"),
        "m",
    ));
    expect(&r, 1);
    assert!(
        r.stderr.contains("channel-unknown.json") && r.stderr.contains("channel"),
        "{}",
        r.stderr
    );
    assert!(
        !a.dir.path().join("out2").join("package.json").exists(),
        "nothing written on failure"
    );
}

/// What the HTTP server received: the request line, the headers (names lower case), the body.
type Received = (String, Vec<(String, String)>, String);

/// A one-shot HTTP server on loopback: answers `status` and sends the request it got.
fn http_server(status: u16) -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let mut headers = Vec::new();
        let mut length = 0;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end().to_string();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap();
            }
            headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        let reply = if status == 200 {
            "{\"ok\":true}"
        } else {
            "database on fire"
        };
        write!(
            stream,
            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
            reply.len()
        )
        .unwrap();
        tx.send((
            line.trim_end().to_string(),
            headers,
            String::from_utf8(body).unwrap(),
        ))
        .unwrap();
    });
    (format!("http://{addr}"), rx)
}

#[test]
fn publish_to_a_local_store_and_register_with_the_admin_api() {
    let p = pack(&[]);
    let store = p.dir.path().join("store");
    let (url, rx) = http_server(200);
    let r = ota_env(
        &[
            "publish",
            "--dir",
            &s(&p.out),
            "--store",
            &s(&store),
            "--json",
        ],
        &[("ADMIN_API_URL", &url), ("ADMIN_API_TOKEN", "s3cr3t")],
    );
    expect(&r, 0);
    assert_eq!(
        std::fs::read(store.join("prod/yolo-v8n-arm64-2026-04-15.enc")).unwrap(),
        std::fs::read(&p.artifact).unwrap()
    );
    assert!(
        store
            .join("prod/yolo-v8n-arm64-2026-04-15.package.json")
            .is_file()
    );
    assert!(
        !store.join("registration.json").exists(),
        "the key never goes to the store"
    );
    let (line, headers, body) = rx.recv().unwrap();
    assert_eq!(line, "POST /internal/resources/publish HTTP/1.1");
    assert!(
        headers.contains(&("authorization".into(), "Bearer s3cr3t".into())),
        "{headers:?}"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    let reg: Value =
        serde_json::from_str(&std::fs::read_to_string(p.out.join("registration.json")).unwrap())
            .unwrap();
    assert_eq!(body, reg);
    assert!(body["cdn_url"].as_str().unwrap().starts_with("file://"));
    assert_eq!(r.json()["registered"]["http_status"], 200);

    // A custom path; the API refuses: exit 2 with its answer.
    let (url, rx) = http_server(500);
    let r = ota_env(
        &["publish", "--dir", &s(&p.out), "--store", &s(&store)],
        &[
            ("ADMIN_API_URL", &format!("{url}/")),
            ("ADMIN_API_TOKEN", "t"),
            ("ADMIN_API_PUBLISH_PATH", "/v2/publish"),
        ],
    );
    expect(&r, 2);
    assert!(
        r.stderr.contains("HTTP 500") && r.stderr.contains("database on fire"),
        "{}",
        r.stderr
    );
    assert_eq!(rx.recv().unwrap().0, "POST /v2/publish HTTP/1.1");
    // A token is required with the URL; an artifact that does not match is not uploaded.
    expect(
        &ota_env(
            &["publish", "--dir", &s(&p.out), "--store", &s(&store)],
            &[("ADMIN_API_URL", &url)],
        ),
        2,
    );
    let mut bytes = std::fs::read(&p.artifact).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&p.artifact, &bytes).unwrap();
    let r = ota(&[
        "publish",
        "--dir",
        &s(&p.out),
        "--store",
        &s(&p.dir.path().join("store2")),
    ]);
    expect(&r, 1);
    assert!(!p.dir.path().join("store2/prod").exists());
    expect(&ota(&["publish", "--dir", &s(&p.out)]), 2); // no store at all
}

/// moto's S3 server on a free loopback port, stopped on drop.
struct Moto(std::process::Child, String);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto() -> Option<Moto> {
    if std::env::var_os("OTA_SKIP_S3").is_some() {
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child =
        std::process::Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect(
                "starting moto's server (tests/setup installs it; OTA_SKIP_S3=1 skips this test)",
            );
    let m = Moto(child, format!("http://127.0.0.1:{port}"));
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(m);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("moto's server did not start on port {port}");
}

/// Runs boto3 (moto's dependency) against the server: an independent S3 client.
fn boto3(endpoint: &str, script: &str) -> Vec<u8> {
    let prelude = format!(
        "import boto3, sys\ns3 = boto3.client('s3', endpoint_url='{endpoint}', aws_access_key_id='test', \
         aws_secret_access_key='test', region_name='us-east-1')\n"
    );
    let out =
        std::process::Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
            .args(["-c", &(prelude + script)])
            .output()
            .expect("running python3");
    assert!(
        out.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn s3_get(endpoint: &str, bucket: &str, key: &str) -> Vec<u8> {
    boto3(
        endpoint,
        &format!(
            "sys.stdout.buffer.write(s3.get_object(Bucket='{bucket}', Key='{key}')['Body'].read())"
        ),
    )
}

#[test]
fn publish_uploads_to_an_s3_compatible_server() {
    let Some(server) = moto() else {
        eprintln!("OTA_SKIP_S3 is set: not testing the S3 upload");
        return;
    };
    boto3(&server.1, "s3.create_bucket(Bucket='models')");
    let p = pack(&[]);
    let env = [
        ("S3_ENDPOINT", server.1.as_str()),
        ("S3_ACCESS_KEY", "test"),
        ("S3_SECRET_KEY", "test"),
        ("S3_BUCKET", "models"),
        ("CDN_PUBLIC_BASE_URL", "https://cdn.example.com/"),
    ];
    let r = ota_env(
        &[
            "publish",
            "--dir",
            &s(&p.out),
            "--store",
            "s3://models/releases",
            "--json",
        ],
        &env,
    );
    expect(&r, 0);
    let j = r.json();
    assert_eq!(
        j["object"],
        "s3://models/releases/prod/yolo-v8n-arm64-2026-04-15.enc"
    );
    assert_eq!(
        j["cdn_url"],
        "https://cdn.example.com/releases/prod/yolo-v8n-arm64-2026-04-15.enc"
    );
    let object = s3_get(
        &server.1,
        "models",
        "releases/prod/yolo-v8n-arm64-2026-04-15.enc",
    );
    assert!(
        object == std::fs::read(&p.artifact).unwrap(),
        "the stored object is the artifact"
    );
    let envelope = s3_get(
        &server.1,
        "models",
        "releases/prod/yolo-v8n-arm64-2026-04-15.package.json",
    );
    assert!(
        envelope == std::fs::read(p.out.join("package.json")).unwrap(),
        "the envelope beside it"
    );
    // Without CDN_PUBLIC_BASE_URL, seed 002's default: {S3_ENDPOINT}/{S3_BUCKET}/{key}; the
    // store defaults to s3://$S3_BUCKET.
    let r = ota_env(&["publish", "--dir", &s(&p.out), "--json"], &env[..4]);
    expect(&r, 0);
    assert_eq!(
        r.json()["cdn_url"],
        format!("{}/models/prod/yolo-v8n-arm64-2026-04-15.enc", server.1)
    );
    // No credentials: usage.
    let r = ota_env(&["publish", "--dir", &s(&p.out)], &env[..1]);
    expect(&r, 2);
    // A bucket that does not exist: the store's error, exit 2.
    let r = ota_env(
        &["publish", "--dir", &s(&p.out), "--store", "s3://nope"],
        &env[..3],
    );
    expect(&r, 2);
    assert!(r.stderr.contains("s3://nope"), "{}", r.stderr);
}

#[test]
fn audit_verify_checks_the_demo_trail_and_its_head_with_keep_relative() {
    let dir = tmp();
    // `--keep` with a relative path: the devices' probes still find their files.
    let out = assert_cmd::cargo::cargo_bin_cmd!("ota")
        .current_dir(dir.path())
        .args([
            "demo",
            "--devices",
            "40",
            "--model-mb",
            "0.2",
            "--keep",
            "demo",
            "--json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let j: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(j["summary"]["broken"], 0, "{stdout}");
    assert_eq!(j["summary"]["measured"]["down"], 0);
    let head = j["audit_head"].as_str().unwrap().to_string();
    let trail = dir.path().join("demo").join("audit.jsonl");
    let r = ota(&["audit", "verify", &s(&trail), "--json"]);
    expect(&r, 0);
    let records = r.json()["records"].as_u64().unwrap();
    assert!(records > 5);
    assert_eq!(r.json()["head"], head.as_str());
    let r = ota(&["audit", "verify", &s(&trail), "--head", &head, "--json"]);
    expect(&r, 0);
    assert_eq!(r.json()["anchored"], true);
    let text = std::fs::read_to_string(&trail).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Without its last record the chain still links; only the head catches it.
    let short: String = lines[..lines.len() - 1]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&trail, &short).unwrap();
    expect(&ota(&["audit", "verify", &s(&trail)]), 0);
    let r = ota(&["audit", "verify", &s(&trail), "--head", &head]);
    expect(&r, 1);
    assert!(r.stdout.contains("anchored head"), "{}", r.stdout);
    // A malformed head is a usage error.
    let r = ota(&["audit", "verify", &s(&trail), "--head", "last"]);
    expect(&r, 2);
    assert!(r.stderr.contains("--head"), "{}", r.stderr);
    // A record dropped from the middle, or edited, is caught without a head.
    let dropped: String = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    std::fs::write(&trail, dropped).unwrap();
    let r = ota(&["audit", "verify", &s(&trail)]);
    expect(&r, 1);
    assert!(r.stdout.contains("audit.jsonl"), "{}", r.stdout);
    // With --json too: its error names the file.
    let r = ota(&["audit", "verify", &s(&trail), "--json"]);
    expect(&r, 1);
    assert!(
        r.json()["error"]
            .as_str()
            .is_some_and(|e| e.starts_with(&format!("{}: ", s(&trail)))),
        "{}",
        r.stdout
    );
    let edited = text.replacen("\"alice\"", "\"mallory\"", 1);
    std::fs::write(&trail, edited).unwrap();
    expect(&ota(&["audit", "verify", &s(&trail)]), 1);
}

/// The simulation (`--simulate`) under `seed`: its JSON.
fn demo(seed: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "demo",
        "--simulate",
        "--seed",
        seed,
        "--devices",
        "80",
        "--model-mb",
        "0.25",
        "--json",
    ];
    args.extend(extra);
    let r = ota(&args);
    expect(&r, 0);
    r.json()
}

#[test]
fn the_simulated_demo_is_deterministic_per_seed_and_its_summary_adds_up() {
    for seed in ["3", "11"] {
        let a = demo(seed, &[]);
        let b = demo(seed, &[]);
        assert_eq!(a["summary"], b["summary"], "seed {seed}: same summary");
        assert_eq!(
            a["transcript"], b["transcript"],
            "seed {seed}: same transcript"
        );
        let s = &a["summary"];
        let n = |k: &str| s[k].as_u64().unwrap();
        assert_eq!(n("eligible") + n("incompatible"), 80);
        let by_reason: u64 = s["incompatible_by_reason"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(by_reason, n("incompatible"));
        assert_eq!(n("fleet_impact"), 0);
        assert_eq!(s["measured"]["down"], 0);
        assert_eq!(s["audit"]["verified"], true);
        assert_eq!(s["rollout"], "completed");
        // Every device that failed its probe restored itself.
        assert_eq!(n("restored"), n("failed"));
    }
    assert_ne!(demo("3", &[])["summary"], demo("11", &[])["summary"]);

    // A seed whose canary catches a bad device: halt, pause, rollback, as in seed 000.
    let j = demo("3", &["--failure-rate", "0.2"]);
    let t: Vec<String> = j["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    let has = |p: &str| t.iter().any(|l| l.contains(p));
    assert!(
        has("canary") && has("probe failed") && has("recovered"),
        "{t:#?}"
    );
    assert!(
        has("halt rule tripped") && has("rollout paused") && has("roll back"),
        "{t:#?}"
    );
    let s = &j["summary"];
    assert!(s["failed"].as_u64().unwrap() >= 1);
    assert_eq!(s["succeeded"], 0, "every updated device was rolled back");
    assert_eq!(s["measured"]["on_new"], 0);

    // A healthy fleet completes through every wave.
    let j = demo("11", &["--failure-rate", "0"]);
    let s = &j["summary"];
    assert_eq!(s["succeeded"], s["eligible"]);
    assert_eq!(s["measured"]["on_new"], s["eligible"]);
    assert!(
        j["transcript"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("wave 3/3"))
    );
}

/// The live demo (an in-process server and 40 real agents on loopback) under `seed`: its JSON
/// (it must exit 0: no device left down or broken).
fn live_demo(seed: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "demo",
        "--seed",
        seed,
        "--devices",
        "40",
        "--model-mb",
        "0.2",
        "--json",
    ];
    args.extend(extra);
    let r = ota(&args);
    expect(&r, 0);
    r.json()
}

fn transcript(j: &Value) -> Vec<String> {
    j["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

/// Seed 2 with a fifth of the devices bad: the canary passes, the second wave trips the halt
/// rule with devices still in flight; they finish, the operator rolls back. Run twice, the
/// counts are the same although 40 agents run concurrently and report in any order.
#[test]
fn the_live_demo_halts_and_rolls_back_with_the_same_counts_each_run() {
    let a = live_demo("2", &["--failure-rate", "0.2"]);
    let b = live_demo("2", &["--failure-rate", "0.2"]);
    assert_eq!(a["summary"], b["summary"], "same counts for the same seed");
    assert_eq!(a["live"], true);
    let s = &a["summary"];
    let n = |k: &str| s[k].as_u64().unwrap();
    assert_eq!(n("eligible") + n("incompatible"), 40);
    let by_reason: u64 = s["incompatible_by_reason"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_reason, n("incompatible"));
    assert!(s["halt_reason"].as_str().is_some(), "{s}");
    assert_eq!(s["rolled_back_by_operator"], true);
    assert_eq!(s["rollout"], "completed");
    assert!(n("failed") >= 2, "{s}");
    // Every device whose probe failed restored itself; every updated one was rolled back.
    assert_eq!(n("restored"), n("failed"));
    assert_eq!(n("succeeded"), 0);
    assert!(n("rolled_back") >= 1, "{s}");
    assert_eq!(n("fleet_impact"), 0);
    assert_eq!(s["measured"]["on_new"], 0);
    assert_eq!(s["measured"]["on_previous"], 40);
    assert_eq!(s["measured"]["down"], 0);
    assert_eq!(n("broken"), 0);
    assert_eq!(a["audit"]["verified"], true);
    let t = transcript(&a);
    let has = |p: &str| t.iter().any(|l| l.contains(p));
    for p in [
        "wave 1/3 → 2 devices canary",
        "swapped",
        "probing",
        "/bin/false",
        "recovered",
        "halt rule tripped",
        "rollout paused",
        "operator alice: roll back",
        "rolled back",
        "closed after the rollback",
    ] {
        assert!(has(p), "{p:?} missing from {t:#?}");
    }
}

/// A healthy fleet takes the update through every wave; the devices' own slots say so.
#[test]
fn the_live_demo_completes_every_wave_on_a_healthy_fleet() {
    let j = live_demo("11", &["--failure-rate", "0"]);
    let s = &j["summary"];
    assert_eq!(s["succeeded"], s["eligible"], "{s}");
    assert_eq!(s["measured"]["on_new"], s["eligible"]);
    assert_eq!(s["measured"]["on_previous"], s["incompatible"]);
    assert_eq!(s["rollout"], "completed");
    assert_eq!(s["rolled_back_by_operator"], false);
    assert!(s["halt_reason"].is_null(), "{s}");
    assert!(transcript(&j).iter().any(|l| l.contains("wave 3/3")));
}

/// The `.json` files in a metadata directory, sorted.
fn json_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

fn tuf_version(file: &Path) -> u64 {
    let v: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    v["signed"]["version"].as_u64().unwrap()
}

/// Whether strace can trace here; when it cannot, the caller is skipped, unless
/// `OTA_REQUIRE_TOOLS` is set (as CI sets it), which fails instead.
fn strace_works() -> bool {
    let works = std::process::Command::new("strace")
        .args(["-o", "/dev/null", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        assert!(
            std::env::var_os("OTA_REQUIRE_TOOLS").is_none(),
            "OTA_REQUIRE_TOOLS is set but strace is not installed (or cannot trace)"
        );
        eprintln!("strace cannot run here: skipped");
    }
    works
}

/// Runs `ota ARGS` under strace, tracing the system calls `trace` (strace's `-e trace=`) of
/// every thread into `log`; asserts it succeeded and gives the log's text.
fn ota_under_strace(trace: &str, log: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("strace")
        .args(["-f", "-qq", "-y", "-e", &format!("trace={trace}")])
        .arg("-o")
        .arg(log)
        .arg(env!("CARGO_BIN_EXE_ota"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(log).unwrap()
}

/// `ota unpack --package` and `ota verify` keep the envelope's chunk table in a file with no
/// name (`O_TMPFILE`: beside the output, and in the temporary directory), not in memory, so
/// memory does not grow with the artifact; and what they verify is the same. Checked on the
/// system calls, under strace.
#[test]
fn unpack_and_verify_keep_the_chunk_table_in_a_file_with_no_name() {
    if !strace_works() {
        return;
    }
    let p = pack(&[]);
    let d = p.dir.path();
    let env = s(&p.out.join("package.json"));
    let reg: Value =
        serde_json::from_str(&std::fs::read_to_string(p.out.join("registration.json")).unwrap())
            .unwrap();
    let key = reg["encryption_key"].as_str().unwrap();
    let plain = d.join("plain.engine");
    let (art, out) = (s(&p.artifact), s(&plain));
    let unpack = unpack_package(&env, &p.public, key, &art, &out);
    let verify = [
        "verify",
        "--package",
        &env,
        "--artifact",
        &art,
        "--trusted-key",
        &p.public,
    ];
    // Unpack's output has no name until it is complete either: two such files there.
    for (what, args, dir, files) in [
        ("unpack", &unpack[..], s(d), 2),
        ("verify", &verify[..], s(&std::env::temp_dir()), 1),
    ] {
        let log = ota_under_strace("openat,open", &d.join(format!("{what}.log")), args);
        let made = log
            .lines()
            .filter(|l| {
                l.contains("O_TMPFILE") && l.contains(&format!("{dir:?}")) && !l.contains("= -1")
            })
            .count();
        assert_eq!(made, files, "{what}: files with no name in {dir}:\n{log}");
    }
    assert_eq!(std::fs::read(&plain).unwrap(), p.engine);
}

/// `ota pack` opens `--file` once, for its size and its sealing: a FIFO or a pipe keeps its
/// reader from the start, so its writer never finds it closed in between (EPIPE). Checked on
/// the system calls, under strace.
#[test]
fn pack_opens_its_file_once() {
    if !strace_works() {
        return;
    }
    let d = tmp();
    keygen(d.path());
    let image = d.path().join("image.bin");
    std::fs::write(&image, noise(200_000, 3)).unwrap();
    let (file, key, out) = (
        s(&image),
        s(&d.path().join("keys/private.pem")),
        s(&d.path().join("out")),
    );
    let args = [
        "pack",
        "--type",
        "fw",
        "--file",
        &file,
        "--package-version",
        "1.0.0",
        "--device-type",
        "sensor",
        "--bucket",
        "fw",
        "--key",
        &key,
        "--resource-name",
        "image",
        "--dev-stage",
        "prod",
        "--architecture",
        "arm64",
        "--version",
        "1.0.0",
        "--out",
        &out,
    ];
    let log = ota_under_strace("openat,open", &d.path().join("pack.log"), &args);
    let opens = log
        .lines()
        .filter(|l| l.contains(&format!("{file:?}")) && !l.contains("= -1"))
        .count();
    assert_eq!(opens, 1, "{log}");
    // --reproducible reads it twice (hashed, then sealed): only a regular file will do.
    let mut twice = args.to_vec();
    twice[4] = "/dev/null";
    let seal_key = "11".repeat(32);
    twice.extend(["--reproducible", "--seal-key", &seal_key]);
    let r = ota(&twice);
    expect(&r, 2);
    assert!(
        r.stderr.contains("--reproducible") && r.stderr.contains("not a regular file"),
        "{}",
        r.stderr
    );
}

/// `ota tuf init` makes the metadata directory and its missing parents durable: each new
/// directory is synced into its parent, so the trusted root it writes there survives a power
/// cut with the directory's own entry. Checked on the system calls, under strace.
#[test]
fn tuf_init_syncs_each_directory_it_creates_into_its_parent() {
    if !strace_works() {
        return;
    }
    let p = pack(&[]);
    let d = p.dir.path();
    let key = s(&d.join("keys/private.pem"));
    let r = ota(&[
        "tuf",
        "create-repo",
        "--repo",
        &s(&d.join("repo")),
        "--key",
        &key,
        "--json",
    ]);
    expect(&r, 0);
    let trusted_root = r.json()["root"].as_str().unwrap().to_string();
    let md = d.join("new").join("deeper").join("md");
    let log = ota_under_strace(
        "mkdir,mkdirat,fsync",
        &d.join("strace.log"),
        &["tuf", "--metadata-dir", &s(&md), "init", &trusted_root],
    );
    let lines: Vec<&str> = log.lines().collect();
    for dir in [d.join("new"), d.join("new/deeper"), md.clone()] {
        let made = lines
            .iter()
            .position(|l| {
                l.contains("mkdir") && l.contains(&format!("{:?}", s(&dir))) && l.ends_with("= 0")
            })
            .unwrap_or_else(|| panic!("{} was not made:\n{log}", dir.display()));
        let parent = s(dir.parent().unwrap());
        assert!(
            lines[made..]
                .iter()
                .any(|l| l.contains("fsync(") && l.contains(&format!("<{parent}>"))),
            "{} was made but {parent} was not synced after:\n{log}",
            dir.display()
        );
    }
}

/// `ota publish` to a local store makes what it uploaded durable before it answers: each
/// object is synced before the rename that puts it in place (object_store writes it under a
/// staging name, `NAME#N`), and its directory after; the directories it made are synced into
/// their parents, up to the store's, which publish makes durable in its own parent. Checked
/// on the system calls, under strace.
#[test]
fn publish_to_a_local_store_syncs_each_object_and_the_directories_above_it() {
    if !strace_works() {
        return;
    }
    let p = pack(&[]);
    let d = p.dir.path();
    let store = d.join("stores").join("local");
    let log = ota_under_strace(
        "fsync,fdatasync,rename,renameat,renameat2",
        &d.join("strace.log"),
        &["publish", "--dir", &s(&p.out), "--store", &s(&store)],
    );
    let lines: Vec<&str> = log.lines().collect();
    let synced = |what: &str| {
        lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.contains("sync(") && l.contains(what))
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    };
    for object in [
        "prod/yolo-v8n-arm64-2026-04-15.enc",
        "prod/yolo-v8n-arm64-2026-04-15.package.json",
    ] {
        let path = s(&store.join(object));
        let data = synced(&format!("<{path}#"));
        let renamed = lines
            .iter()
            .position(|l| l.contains("rename") && l.contains(&format!("\"{path}\"")))
            .unwrap_or_else(|| panic!("{object} was not renamed into place:\n{log}"));
        assert!(
            data.iter().any(|&i| i < renamed),
            "{object} was not synced before its rename:\n{log}"
        );
        assert!(
            synced(&format!("<{}>", s(&store.join("prod"))))
                .iter()
                .any(|&i| i > renamed),
            "{object}'s directory was not synced after its rename:\n{log}"
        );
    }
    for dir in [store.clone(), d.join("stores"), d.to_path_buf()] {
        assert!(
            !synced(&format!("<{}>", s(&dir))).is_empty(),
            "{} was not synced:\n{log}",
            dir.display()
        );
    }
}

/// `ota tuf add-target` syncs each file before the rename that puts it in place and the
/// metadata directory after, so a publisher told the target was added still has it, and
/// metadata that names it, after a power cut. Checked on the system calls, under strace.
#[test]
fn tuf_publishing_syncs_each_file_before_its_rename_and_the_directory_after() {
    if !strace_works() {
        return;
    }
    let p = pack(&[]);
    let d = p.dir.path();
    let key = s(&d.join("keys/private.pem"));
    let repo = d.join("repo");
    expect(
        &ota(&["tuf", "create-repo", "--repo", &s(&repo), "--key", &key]),
        0,
    );
    let log = ota_under_strace(
        "fsync,fdatasync,rename,renameat,renameat2",
        &d.join("strace.log"),
        &[
            "tuf",
            "add-target",
            "--repo",
            &s(&repo),
            "--key",
            &key,
            "--package",
            &s(&p.out.join("package.json")),
            "--artifact",
            &s(&p.artifact),
        ],
    );
    let lines: Vec<&str> = log.lines().collect();
    let synced = |path: &str, lines: &[&str]| {
        lines
            .iter()
            .any(|l| l.contains("fsync(") && l.contains(&format!("<{path}>")))
    };
    let meta = s(&repo.join("metadata"));
    let mut renamed = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.contains("rename") || !line.ends_with("= 0") {
            continue;
        }
        let quoted: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
        let [from, to] = quoted[..] else { continue };
        if !to.starts_with(&meta) {
            continue;
        }
        assert!(synced(from, &lines[..i]), "{from} renamed unsynced:\n{log}");
        let dir = Path::new(to).parent().unwrap().to_str().unwrap();
        assert!(
            synced(dir, &lines[i..]),
            "{dir} unsynced after {to}:\n{log}"
        );
        renamed.push(
            Path::new(to)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        );
    }
    renamed.sort();
    assert_eq!(
        renamed,
        ["2.snapshot.json", "2.targets.json", "timestamp.json"],
        "{log}"
    );
    // The copied target too, before the metadata naming it.
    let target = std::fs::read_dir(repo.join("targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_file())
        .unwrap();
    assert!(
        synced(target.to_str().unwrap(), &lines),
        "{}: {log}",
        target.display()
    );
}

const FOUR: [&str; 4] = [
    "root.json",
    "snapshot.json",
    "targets.json",
    "timestamp.json",
];

#[test]
fn tuf_publisher_and_client_contract_over_http() {
    let p = pack(&[]);
    let d = p.dir.path();
    let key = s(&d.join("keys/private.pem"));
    let repo = d.join("repo");

    // The publisher: a repository, the packed package added as a target, and a second version
    // packed straight into it.
    let r = ota(&[
        "tuf",
        "create-repo",
        "--repo",
        &s(&repo),
        "--key",
        &key,
        "--json",
    ]);
    expect(&r, 0);
    let trusted_root = r.json()["root"].as_str().unwrap().to_string();
    let r = ota(&[
        "tuf",
        "add-target",
        "--repo",
        &s(&repo),
        "--package",
        &s(&p.out.join("package.json")),
        "--artifact",
        &s(&p.artifact),
        "--key",
        &key,
        "--json",
    ]);
    expect(&r, 0);
    assert_eq!(r.json()["target"], "yolo-v8n-arm64-2026-04-15.enc");
    let engine2 = noise(200_000, 9);
    std::fs::write(d.join("v2.engine"), &engine2).unwrap();
    let out2 = d.join("out2");
    let r = ota(&[
        "pack",
        "--file",
        &s(&d.join("v2.engine")),
        "--manifest",
        &manifest_for(&d.join("v2.engine")),
        "--key",
        &key,
        "--resource-name",
        "yolo-v8n",
        "--dev-stage",
        "prod",
        "--architecture",
        "arm64",
        "--version",
        "2026-05-01",
        "--out",
        &s(&out2),
        "--tuf-repo",
        &s(&repo),
        "--json",
    ]);
    expect(&r, 0);
    let second = "prod/yolo-v8n-arm64-2026-05-01.enc";
    assert_eq!(r.json()["tuf_target"], second);
    let base = ota_tests::serve_dir(repo.clone());
    let murl = format!("{base}/metadata");
    let turl = format!("{base}/targets");

    // init: the trusted root, nothing else, no network.
    let md = d.join("md");
    let init = |root: &str| ota(&["tuf", "--metadata-dir", &s(&md), "init", root]);
    expect(&init(&s(&p.out.join("package.json"))), 1);
    expect(&init(&s(&d.join("missing.json"))), 1);
    expect(&init(&trusted_root), 0);
    assert_eq!(json_files(&md), ["root.json"]);

    // refresh: the four files, byte for byte as served, and nothing else.
    let refresh = |url: &str| {
        ota(&[
            "tuf",
            "--metadata-url",
            url,
            "--metadata-dir",
            &s(&md),
            "refresh",
            "--json",
        ])
    };
    let r = refresh(&murl);
    expect(&r, 0);
    assert_eq!(r.json()["versions"]["targets"], 3);
    assert_eq!(files_in(&md), FOUR);
    assert_eq!(
        std::fs::read(md.join("timestamp.json")).unwrap(),
        std::fs::read(repo.join("metadata/timestamp.json")).unwrap()
    );
    // A repository that does not answer is a failure, and the trusted state stays.
    let before = std::fs::read(md.join("timestamp.json")).unwrap();
    expect(&refresh("http://127.0.0.1:1/metadata"), 1);
    expect(&refresh(&format!("{base}/nowhere")), 1);
    assert_eq!(std::fs::read(md.join("timestamp.json")).unwrap(), before);
    // Missing flags are failures too (exit 1 for anything under `ota tuf`).
    expect(&ota(&["tuf", "--metadata-dir", &s(&md), "refresh"]), 1);
    expect(&ota(&["tuf", "--no-such-flag", "refresh"]), 1);

    // download: each target in order, under a stable name, the bytes the publisher packed.
    let download = |tdir: &Path, names: &[&str]| {
        let mut args = vec![
            "tuf".to_string(),
            "--metadata-url".into(),
            murl.clone(),
            "--metadata-dir".into(),
            s(&md),
            "--target-dir".into(),
            s(tdir),
            "--target-base-url".into(),
            turl.clone(),
        ];
        for n in names {
            args.push("--target-name".into());
            args.push(n.to_string());
        }
        args.push("download".into());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        ota(&argv)
    };
    let tdir = d.join("targets");
    expect(
        &download(&tdir, &["yolo-v8n-arm64-2026-04-15.enc", second]),
        0,
    );
    assert_eq!(
        files_in(&tdir),
        [
            "prod%2Fyolo-v8n-arm64-2026-05-01.enc",
            "yolo-v8n-arm64-2026-04-15.enc"
        ]
    );
    assert_eq!(
        std::fs::read(tdir.join("yolo-v8n-arm64-2026-04-15.enc")).unwrap(),
        std::fs::read(&p.artifact).unwrap()
    );
    assert_eq!(
        std::fs::read(tdir.join("prod%2Fyolo-v8n-arm64-2026-05-01.enc")).unwrap(),
        std::fs::read(out2.join(second)).unwrap()
    );
    // The artifact cache: a target already there with the right length and hashes is not
    // downloaded again (the file is the same one); one with other bytes is.
    {
        use std::os::unix::fs::MetadataExt;
        let (first, other) = (
            "yolo-v8n-arm64-2026-04-15.enc",
            "prod%2Fyolo-v8n-arm64-2026-05-01.enc",
        );
        let ino = |n: &str| std::fs::metadata(tdir.join(n)).unwrap().ino();
        let kept = ino(first);
        let len = std::fs::metadata(tdir.join(other)).unwrap().len() as usize;
        std::fs::write(tdir.join(other), vec![0u8; len]).unwrap();
        let tampered = ino(other);
        expect(
            &download(&tdir, &["yolo-v8n-arm64-2026-04-15.enc", second]),
            0,
        );
        assert_eq!(ino(first), kept, "a cached target was downloaded again");
        assert_ne!(ino(other), tampered, "a wrong cached target was kept");
        assert_eq!(
            std::fs::read(tdir.join(other)).unwrap(),
            std::fs::read(out2.join(second)).unwrap()
        );
    }
    // It stops at the first failure: the target after an unknown one is not fetched.
    let tdir2 = d.join("targets2");
    let r = download(
        &tdir2,
        &["yolo-v8n-arm64-2026-04-15.enc", "missing.enc", second],
    );
    expect(&r, 1);
    assert!(r.stderr.contains("missing.enc"), "{}", r.stderr);
    assert_eq!(files_in(&tdir2), ["yolo-v8n-arm64-2026-04-15.enc"]);
    assert_eq!(files_in(&md), FOUR);

    // The Trust Center: roles, keys, who signed, every target with its package.
    let r = ota(&["tuf", "--metadata-dir", &s(&md), "inspect", "--json"]);
    expect(&r, 0);
    let tc = r.json();
    let roles: Vec<&str> = tc["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["root", "timestamp", "snapshot", "targets"]);
    for role in tc["roles"].as_array().unwrap() {
        assert_eq!(role["threshold"], 1);
        assert_eq!(role["signed_by"], role["keyids"]);
    }
    let targets = tc["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    assert_eq!(targets[0]["name"], second);
    assert_eq!(targets[0]["package"], "yolo-v8n 2.1.0");
    let r = ota(&["tuf", "--metadata-dir", &s(&md), "inspect"]);
    expect(&r, 0);
    assert!(r.stdout.contains("2 target(s)"), "{}", r.stdout);

    // The timestamp re-signed alone, then the root rotated to a new key cross-signed by the
    // old: the client follows both.
    expect(
        &ota(&[
            "tuf",
            "resign-timestamp",
            "--repo",
            &s(&repo),
            "--key",
            &key,
        ]),
        0,
    );
    expect(&refresh(&murl), 0);
    assert_eq!(tuf_version(&md.join("timestamp.json")), 4);
    let new_root = keygen(&d.join("root2"));
    let new_key = s(&d.join("root2/keys/private.pem"));
    // Without the old root key the rotation is refused and nothing changes.
    let r = ota(&[
        "tuf",
        "rotate-root",
        "--repo",
        &s(&repo),
        "--new-root-key",
        &new_root,
        "--key",
        &new_key,
    ]);
    expect(&r, 1);
    assert!(!repo.join("metadata/2.root.json").exists());
    let r = ota(&[
        "tuf",
        "rotate-root",
        "--repo",
        &s(&repo),
        "--new-root-key",
        &new_root,
        "--key",
        &key,
        "--key",
        &new_key,
    ]);
    expect(&r, 0);
    expect(&refresh(&murl), 0);
    assert_eq!(tuf_version(&md.join("root.json")), 2);
    assert_eq!(files_in(&md), FOUR);
}

/// A copy of an attack fixture's trusted state, as a metadata directory.
fn attack_state(name: &str, into: &Path) -> PathBuf {
    let md = into.join(format!("{name}-md"));
    std::fs::create_dir_all(&md).unwrap();
    for f in FOUR {
        let from = ota_tests::fixture(&format!("tuf/{name}/trusted/{f}"));
        if from.exists() {
            std::fs::copy(from, md.join(f)).unwrap();
        }
    }
    md
}

#[test]
fn tuf_attacks_exit_1_and_keep_only_the_roles_that_verified() {
    let d = tmp();
    // The fixtures were signed at this time; their timestamps expire a day later.
    let now = "2026-04-15T07:32:37Z";
    for (attack, status, at) in [
        ("rollback-timestamp", "tuf_rollback", now),
        ("unknown-key", "tuf_unknown_key", now),
        ("mix-and-match", "tuf_mix_and_match", now),
        ("expired", "tuf_expired", "2026-04-17T07:32:37Z"),
    ] {
        let md = attack_state(attack, d.path());
        let before: Vec<Vec<u8>> = FOUR
            .iter()
            .map(|f| std::fs::read(md.join(f)).unwrap_or_default())
            .collect();
        let base = ota_tests::serve_dir(ota_tests::fixture(&format!("tuf/{attack}/repo")));
        let r = ota(&[
            "tuf",
            "--now",
            at,
            "--metadata-url",
            &format!("{base}/metadata"),
            "--metadata-dir",
            &s(&md),
            "refresh",
            "--json",
        ]);
        expect(&r, 1);
        assert_eq!(r.json()["status"], status, "{attack}: {}", r.stdout);
        // Each role that verified before the refusal is kept, and only those: the fixture
        // lists them (tests/tests/tuf_attacks.rs checks the same through the library).
        let expect: serde_json::Value = serde_json::from_slice(
            &std::fs::read(ota_tests::fixture(&format!("tuf/{attack}/expect.json"))).unwrap(),
        )
        .unwrap();
        let persisted: Vec<&str> = expect["persisted"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        let changed: Vec<&str> = FOUR
            .iter()
            .zip(&before)
            .filter(|(f, b)| std::fs::read(md.join(f)).unwrap_or_default() != **b)
            .map(|(f, _)| *f)
            .collect();
        let mut changed = changed;
        changed.sort_unstable();
        let mut persisted = persisted;
        persisted.sort_unstable();
        assert_eq!(
            changed, persisted,
            "{attack}: the roles written after the refusal"
        );
    }
    // A target whose bytes differ from the metadata: exit 1 and no file.
    let md = attack_state("target-bytes", d.path());
    let repo = ota_tests::fixture("tuf/target-bytes/repo");
    let tdir = d.path().join("t");
    let r = ota(&[
        "tuf",
        "--now",
        now,
        "--metadata-url",
        &format!("file://{}", repo.join("metadata").display()),
        "--metadata-dir",
        &s(&md),
        "--target-dir",
        &s(&tdir),
        "--target-base-url",
        &format!("file://{}", repo.join("targets").display()),
        "--target-name",
        "fw.enc",
        "download",
    ]);
    expect(&r, 1);
    assert_eq!(files_in(&tdir), Vec::<String>::new());
    // The good rotation: the client moves to root v2.
    let md = attack_state("rotation-good", d.path());
    let repo = ota_tests::fixture("tuf/rotation-good/repo");
    let r = ota(&[
        "tuf",
        "--now",
        now,
        "--metadata-url",
        &s(&repo.join("metadata")),
        "--metadata-dir",
        &s(&md),
        "refresh",
    ]);
    expect(&r, 0);
    assert_eq!(tuf_version(&md.join("root.json")), 2);
}
