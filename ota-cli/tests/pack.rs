//! `ota pack`: the file must be what the manifest's `files[]` say; a directory packs as a
//! reproducible tar; firmware and software pack without a manifest; a local artifact URI is
//! warned about.

mod common;

use std::path::Path;

use common::{entry, keygen, manifest_with, ota, pack_args, s, with};
use serde_json::Value;

/// A model directory: an engine, its labels and an SBOM, and a manifest describing them.
fn model_dir(root: &Path) -> (std::path::PathBuf, Value) {
    let dir = root.join("model-root");
    let engine = ota_tests::noise(150_000, 3);
    let labels = b"person\ncar\n".to_vec();
    let sbom = br#"{"spdxVersion":"SPDX-2.3"}"#.to_vec();
    std::fs::create_dir_all(dir.join("model")).unwrap();
    std::fs::write(dir.join("model/yolo-v8n.engine"), &engine).unwrap();
    std::fs::write(dir.join("model/labels.txt"), &labels).unwrap();
    std::fs::write(dir.join("sbom.spdx.json"), &sbom).unwrap();
    let m = manifest_with(vec![
        entry("model/yolo-v8n.engine", "engine", &engine),
        entry("model/labels.txt", "labels", &labels),
        entry("sbom.spdx.json", "other", &sbom),
    ]);
    (dir, m)
}

fn write_manifest(root: &Path, m: &Value) -> String {
    let p = root.join("manifest.json");
    std::fs::write(&p, m.to_string()).unwrap();
    s(&p)
}

#[test]
fn pack_refuses_a_file_whose_bytes_the_manifest_does_not_describe() {
    let t = tempfile::tempdir().unwrap();
    let key = keygen(t.path(), "keys");
    let engine = ota_tests::noise(50_000, 1);
    let manifest = write_manifest(
        t.path(),
        &manifest_with(vec![entry("model/yolo-v8n.engine", "engine", &engine)]),
    );
    let out = t.path().join("out");
    // Another file of the same size: the sha256 differs.
    std::fs::write(t.path().join("other.bin"), ota_tests::noise(50_000, 2)).unwrap();
    let args = with(
        pack_args(&key, &out),
        &[
            "--file",
            &s(&t.path().join("other.bin")),
            "--manifest",
            &manifest,
        ],
    );
    ota(&args).expect(1).stderr_has(&[
        "other.bin",
        "files[0] (model/yolo-v8n.engine)",
        "files[0].sha256",
    ]);
    assert!(!out.join("package.json").exists(), "nothing signed");
    // A file of another size.
    std::fs::write(t.path().join("short.bin"), &engine[..1000]).unwrap();
    let args = with(
        pack_args(&key, &out),
        &[
            "--file",
            &s(&t.path().join("short.bin")),
            "--manifest",
            &manifest,
            "--json",
        ],
    );
    let r = ota(&args);
    r.expect(1)
        .stderr_has(&["files[0].size_bytes is 50000", "1000 bytes"]);
    assert_eq!(r.json()["status"], "digest_mismatch");
    // The file itself packs.
    std::fs::write(t.path().join("model.engine"), &engine).unwrap();
    let args = with(
        pack_args(&key, &out),
        &[
            "--file",
            &s(&t.path().join("model.engine")),
            "--manifest",
            &manifest,
        ],
    );
    ota(&args).expect(0);
}

#[test]
fn pack_refuses_one_file_for_a_manifest_of_several_naming_them() {
    let t = tempfile::tempdir().unwrap();
    let key = keygen(t.path(), "keys");
    let (dir, m) = model_dir(t.path());
    let manifest = write_manifest(t.path(), &m);
    let args = with(
        pack_args(&key, &t.path().join("out")),
        &[
            "--file",
            &s(&dir.join("model/yolo-v8n.engine")),
            "--manifest",
            &manifest,
        ],
    );
    ota(&args).expect(1).stderr_has(&[
        "the manifest lists 3 files",
        "files[1] model/labels.txt",
        "give the model's directory",
    ]);
}

#[test]
fn a_directory_packs_as_a_reproducible_tar_of_exactly_its_files() {
    let t = tempfile::tempdir().unwrap();
    let key = keygen(t.path(), "keys");
    let (dir, m) = model_dir(t.path());
    let manifest = write_manifest(t.path(), &m);
    let seal = "5a".repeat(32);
    let pack_into = |out: &Path| {
        let args = with(
            pack_args(&key, out),
            &[
                "--file",
                &s(&dir),
                "--manifest",
                &manifest,
                "--reproducible",
                "--seal-key",
                &seal,
                "--cdn-base",
                "https://cdn.example.com",
                "--json",
            ],
        );
        let r = ota(&args);
        r.expect(0);
        r.json()
    };
    let first = pack_into(&t.path().join("out1"));
    // Other times and modes on disk give the same tar, hence the same sealed artifact.
    for f in [
        "model/yolo-v8n.engine",
        "model/labels.txt",
        "sbom.spdx.json",
    ] {
        let file = std::fs::File::options()
            .write(true)
            .open(dir.join(f))
            .unwrap();
        file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
            .unwrap();
    }
    let second = pack_into(&t.path().join("out2"));
    assert_eq!(first["sha256"], second["sha256"]);
    let artifact = |d: &str| {
        std::fs::read(t.path().join(d).join(first["object_key"].as_str().unwrap())).unwrap()
    };
    assert!(
        artifact("out1") == artifact("out2"),
        "the same artifact bytes"
    );

    // The plaintext is a tar of the three files, sorted, owned by 0, at one fixed time.
    let tar_path = t.path().join("model.tar");
    ota(&[
        "unpack",
        "--registration",
        &s(&t.path().join("out1/registration.json")),
        "--artifact",
        &s(&t
            .path()
            .join("out1")
            .join(first["object_key"].as_str().unwrap())),
        "--out",
        &s(&tar_path),
    ])
    .expect(0);
    let mut archive = tar::Archive::new(std::fs::File::open(&tar_path).unwrap());
    let mut names = Vec::new();
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        assert_eq!(h.username().unwrap(), Some(""));
        names.push((
            e.path().unwrap().display().to_string(),
            h.mtime().unwrap(),
            h.size().unwrap(),
        ));
    }
    let mtime = names[0].1;
    assert!(names.iter().all(|n| n.1 == mtime), "{names:?}");
    let names: Vec<(String, u64)> = names.into_iter().map(|(n, _, size)| (n, size)).collect();
    assert_eq!(
        names,
        [
            ("model/labels.txt".to_string(), 11),
            ("model/yolo-v8n.engine".to_string(), 150_000),
            ("sbom.spdx.json".to_string(), 26),
        ]
    );
}

#[test]
fn a_directory_must_hold_exactly_the_manifests_files() {
    let t = tempfile::tempdir().unwrap();
    let key = keygen(t.path(), "keys");
    let (dir, m) = model_dir(t.path());
    let manifest = write_manifest(t.path(), &m);
    let out = t.path().join("out");
    let run = || {
        ota(&with(
            pack_args(&key, &out),
            &["--file", &s(&dir), "--manifest", &manifest],
        ))
    };
    // A changed byte in one file: that entry, its field.
    std::fs::write(dir.join("model/labels.txt"), b"person\ncat\n").unwrap();
    run()
        .expect(1)
        .stderr_has(&["files[1] (model/labels.txt)", "files[1].sha256"]);
    std::fs::write(dir.join("model/labels.txt"), b"person\ncar\n").unwrap();
    // A file the manifest does not list.
    std::fs::write(dir.join("notes.md"), b"x").unwrap();
    run()
        .expect(1)
        .stderr_has(&["notes.md: in the directory but not in the manifest's files[]"]);
    std::fs::remove_file(dir.join("notes.md")).unwrap();
    // A listed file that is missing.
    std::fs::remove_file(dir.join("sbom.spdx.json")).unwrap();
    run()
        .expect(1)
        .stderr_has(&["files[2] (sbom.spdx.json): no such file in the directory"]);
    assert!(!out.join("package.json").exists(), "nothing signed");
    // An output directory inside the model's would be packed into its own tar.
    std::fs::write(dir.join("sbom.spdx.json"), br#"{"spdxVersion":"SPDX-2.3"}"#).unwrap();
    let inside = dir.join("out");
    ota(&with(
        pack_args(&key, &inside),
        &["--file", &s(&dir), "--manifest", &manifest],
    ))
    .expect(2)
    .stderr_has(&["--out", "inside --file"]);
    assert!(!inside.exists(), "nothing created");
    // Also through a symbolic link to it (the tar grew without end, holding itself).
    let link = dir.parent().unwrap().join("model-link");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    let through = link.join("sub");
    ota(&with(
        pack_args(&key, &through),
        &["--file", &s(&dir), "--manifest", &manifest],
    ))
    .expect(2)
    .stderr_has(&["--out", "inside --file"]);
    assert!(!dir.join("sub").exists(), "nothing created");
}

#[test]
fn firmware_and_software_pack_without_a_manifest() {
    let t = tempfile::tempdir().unwrap();
    let key = keygen(t.path(), "keys");
    let image = t.path().join("image.tar");
    std::fs::write(&image, ota_tests::noise(80_000, 5)).unwrap();
    let out = t.path().join("out");
    let fw = |more: &[&str]| {
        with(
            pack_args(&key, &out),
            &[
                &[
                    "--type",
                    "fw",
                    "--file",
                    &s(&image),
                    "--bucket",
                    "fw-bucket",
                ],
                more,
            ]
            .concat(),
        )
    };
    let r = ota(&fw(&[
        "--package-version",
        "1.4.0",
        "--device-type",
        "gateway",
        "--min-version",
        "1.2.0",
        "--json",
    ]));
    r.expect(0);
    assert_eq!(r.json()["type"], "fw");
    assert_eq!(r.json()["name"], "yolo-v8n");
    assert_eq!(r.json()["version"], "1.4.0");
    let i = ota(&["inspect", &s(&out.join("package.json")), "--json"]);
    i.expect(0);
    let p = &i.json()["package"];
    assert_eq!(p["type"], "fw");
    assert_eq!(
        p["compatibility"]["device_types"],
        serde_json::json!(["gateway"])
    );
    assert_eq!(p["compatibility"]["min_version"], "1.2.0");
    assert!(p.get("manifest").is_none_or(Value::is_null), "{p}");

    let r = ota(&with(
        pack_args(&key, &t.path().join("sw")),
        &[
            "--type",
            "sw",
            "--file",
            &s(&image),
            "--name",
            "edge-agent",
            "--package-version",
            "0.3.1",
            "--cdn-base",
            "https://cdn.example.com",
            "--json",
        ],
    ));
    r.expect(0);
    assert_eq!(
        (r.json()["type"].as_str(), r.json()["name"].as_str()),
        (Some("sw"), Some("edge-agent"))
    );

    // The refusals name the flag or the field.
    ota(&fw(&[]))
        .expect(2)
        .stderr_has(&["--package-version", "fw package"]);
    let manifest = write_manifest(t.path(), &manifest_with(vec![]));
    ota(&fw(&[
        "--package-version",
        "1.0.0",
        "--manifest",
        &manifest,
    ]))
    .expect(2)
    .stderr_has(&["--manifest"]);
    ota(&fw(&["--package-version", "1.0.0", "--min-version", "one"]))
        .expect(1)
        .stderr_has(&["compatibility.min_version"]);
    ota(&with(pack_args(&key, &out), &["--file", &s(&image)]))
        .expect(2)
        .stderr_has(&["--manifest: a model package needs its manifest"]);
}

#[test]
fn a_local_artifact_uri_is_warned_about() {
    let t = tempfile::tempdir().unwrap();
    let key = keygen(t.path(), "keys");
    let image = t.path().join("image.bin");
    std::fs::write(&image, b"firmware").unwrap();
    let base = |out: &str| {
        with(
            pack_args(&key, &t.path().join(out)),
            &[
                "--type",
                "fw",
                "--file",
                &s(&image),
                "--package-version",
                "1.0.0",
                "--json",
            ],
        )
    };
    let r = ota(&base("local"));
    r.expect(0)
        .stderr_has(&["ota: warning: the artifact URI is a local path (file://"]);
    let w = r.json()["warnings"].clone();
    assert_eq!(w.as_array().map(Vec::len), Some(1), "{w}");
    assert!(w[0].as_str().unwrap().contains("--cdn-base"), "{w}");
    let r = ota(&with(
        base("cdn"),
        &["--cdn-base", "https://cdn.example.com"],
    ));
    r.expect(0);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    assert_eq!(r.json()["warnings"], serde_json::json!([]));
}

/// A second package packed into the same `--out` would replace `registration.json`, the
/// only copy of the first one's random AES key, while the first artifact stays there, sealed
/// for good. Refused without `--force`; the same package packed again replaces both.
#[test]
fn another_package_packed_into_the_same_out_keeps_the_first_ones_key_unless_forced() {
    let t = tempfile::tempdir().unwrap();
    let key = keygen(t.path(), "keys");
    let image = t.path().join("fw.bin");
    std::fs::write(&image, b"firmware").unwrap();
    let out = t.path().join("out");
    let pack = |version: &str, more: &[&str]| {
        let mut args = pack_args(&key, &out);
        let at = args.iter().position(|a| a == "2026-04-15").unwrap();
        args[at] = version.to_string();
        let file = s(&image);
        let base = [
            "--type",
            "fw",
            "--file",
            file.as_str(),
            "--package-version",
            "1.0.0",
            "--device-type",
            "gateway",
        ];
        with(args, &[&base[..], more].concat())
    };
    let registration = || std::fs::read(out.join("registration.json")).unwrap();
    ota(&pack("v1", &[])).expect(0);
    ota(&pack("v1", &[])).expect(0);
    let first = registration();
    ota(&pack("v2", &[])).expect(2).stderr_has(&[
        "registration.json",
        "another package",
        "--force",
    ]);
    assert_eq!(registration(), first);
    ota(&pack("v2", &["--force"])).expect(0);
    assert_ne!(registration(), first);
}

/// `ota pack` of a model directory killed outright (SIGKILL, a power cut) leaves none of the
/// model's plaintext in the output: its tar has no name while it exists. (It was a hidden
/// named file beside the artifact, and stayed there.)
#[test]
fn a_killed_pack_leaves_no_plaintext_in_the_output() {
    let t = tempfile::tempdir().unwrap();
    let key = keygen(t.path(), "keys");
    let dir = t.path().join("model-root");
    let marker = b"PLAINTEXT-MARKER-3f9c1e";
    let mut engine = marker.to_vec();
    engine.extend(ota_tests::noise(8 << 20, 5));
    std::fs::create_dir_all(dir.join("model")).unwrap();
    std::fs::write(dir.join("model/yolo-v8n.engine"), &engine).unwrap();
    let m = manifest_with(vec![entry("model/yolo-v8n.engine", "engine", &engine)]);
    let manifest = write_manifest(t.path(), &m);
    let out = t.path().join("out");
    let args = with(
        pack_args(&key, &out),
        &["--file", &s(&dir), "--manifest", &manifest],
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ota"))
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Once the sealed artifact grows, the tar it reads is complete.
    let start = std::time::Instant::now();
    loop {
        let sealing = walk(&out)
            .iter()
            .any(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0));
        if sealing {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            panic!("ota pack ended before it was killed");
        }
        assert!(
            start.elapsed().as_secs() < 60,
            "ota pack never started sealing"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for f in walk(&out) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker),
            "{} holds the model's plaintext",
            f.display()
        );
    }
}

/// Every file under `d`.
fn walk(d: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            found.extend(walk(&p));
        } else {
            found.push(p);
        }
    }
    found
}
