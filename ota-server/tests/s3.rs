//! An artifact in S3 (moto's server on loopback, seed 002's variables): fetched, checked and
//! made available; a missing object is refused with the field named.

mod common;

use std::process::{Child, Command, Stdio};

use common::{Srv, assert_error, config, firmware, tmp_with_input};
use serde_json::json;

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_artifact_is_fetched_and_checked() {
    let has_moto = Command::new(python())
        .args(["-c", "import moto.server, boto3"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_moto || std::env::var_os("OTA_SKIP_S3").is_some() {
        eprintln!("moto's server is not installed (tests/setup installs it): skipping");
        return;
    }
    let port = common::free_port();
    let moto = Moto(
        Command::new(python())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (dir, input) = tmp_with_input("s3");
    let (mut fw, pkg, _) = firmware(&input, "2.0.0", false, 150_000);
    // An independent client puts the artifact in a bucket.
    let put = Command::new(python())
        .args(["-c", &format!(
            "import boto3\ns3 = boto3.client('s3', endpoint_url='{endpoint}', aws_access_key_id='test', \
             aws_secret_access_key='test', region_name='us-east-1')\ns3.create_bucket(Bucket='ota-artifacts')\n\
             s3.upload_file('{}', 'ota-artifacts', 'temp-sensor/fw-2.0.0.enc')",
            input.join("fw-2.0.0.enc").display()
        )])
        .output()
        .unwrap();
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );

    let mut cfg = config(&dir);
    cfg.s3_endpoint = Some(endpoint);
    cfg.s3_access_key = Some("test".into());
    cfg.s3_secret_key = Some("test".into());
    let s = Srv::start(cfg).await;
    let admin = s.token("acme", "admin");
    fw["artifact_uri"] = json!("s3://ota-artifacts/temp-sensor/missing.enc");
    assert_error(
        &s.call("POST", "/api/v1/ota/packages", &admin, Some(&fw))
            .await,
        400,
        "INVALID_ARGUMENT",
        "artifact_uri",
    );
    // The statement's own artifact_uri is s3://ota-artifacts/temp-sensor/fw-2.0.0.enc.
    fw.as_object_mut().unwrap().remove("artifact_uri");
    let v = s.upload(&admin, &fw).await;
    assert_eq!(v["package_id"], pkg.as_str());
    assert_eq!(v["checksum_verified"], true);
    // No download is left behind.
    let left: Vec<_> = std::fs::read_dir(dir.join("data/artifacts"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    s.stop();
    drop(moto);
    let _ = std::fs::remove_dir_all(&dir);
}
