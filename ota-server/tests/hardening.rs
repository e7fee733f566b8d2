//! What a hostile or unlucky client meets. Malformed requests get the API's error shape
//! (`{"code","message"}`, the message naming the parameter or field), never a plain-text
//! answer or a panic: path and query parameters that do not parse, a body with more than one
//! JSON document, a method the path does not serve, a `Range` header at the edge of `u64`, a
//! token naming no valid subject. A tenant's `store://` artifact URI reaches only its own part
//! of the store. A registration repeated after its join was lost joins the running rollout.

mod common;

use common::{
    Srv, assert_error, config, firmware, registration, rollout_to_all, state_in, tmp_with_input,
};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_path_query_and_body_are_refused_naming_what_is_wrong() {
    let (dir, input) = tmp_with_input("hardening");
    let (fw, _, _) = firmware(&input, "2.0.0", false, 70_000);
    let s = Srv::start(config(&dir)).await;
    let admin = s.token("acme", "admin");
    s.upload(&admin, &fw).await;

    // A path parameter that is not a number, or not UTF-8 once percent-decoded.
    let got = s
        .call(
            "POST",
            "/api/v1/ota/rollouts/rol_x/waves/abc/approve",
            &admin,
            None,
        )
        .await;
    assert_error(&got, 400, "INVALID_ARGUMENT", "n: cannot read \"abc\"");
    let got = s.get("/api/v1/ota/packages/%FF", &admin).await;
    assert_error(&got, 400, "INVALID_ARGUMENT", "id: not UTF-8");

    // A query parameter of the wrong type, an unknown one, a missing one.
    let got = s
        .get("/api/v1/ota/rollouts/rol_x/devices?page_size=many", &admin)
        .await;
    assert_error(&got, 400, "INVALID_ARGUMENT", "query: page_size");
    let got = s
        .get("/api/v1/ota/rollouts/rol_x/devices?colour=red", &admin)
        .await;
    assert_error(&got, 400, "INVALID_ARGUMENT", "colour");

    // One JSON document per body: whatever follows it is refused, and nothing is stored.
    for body in [&b"{} junk"[..], b"{}{}", b"{\"description\":\"a\"} 1"] {
        let got = s
            .raw("PUT", "/api/v1/ota/profiles/p", &admin, body.to_vec())
            .await;
        assert_error(&got, 400, "INVALID_ARGUMENT", "body: malformed JSON");
    }
    let got = s.get("/api/v1/ota/profiles/p", &admin).await;
    assert_eq!(got.0, 404, "{got:?}");
    let got = s
        .raw("PUT", "/api/v1/ota/profiles/p", &admin, b" {} \n".to_vec())
        .await;
    assert_eq!(got.0, 200, "{got:?}");

    // A method a path does not serve: 405 in the error shape, naming the method, with Allow.
    let r = s
        .http
        .delete(format!("{}/api/v1/ota/packages", s.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let allow = r.headers()["allow"].to_str().unwrap().to_string();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "INVALID_ARGUMENT", "{v}");
    assert!(
        v["message"].as_str().unwrap().starts_with("method: DELETE"),
        "{v}"
    );
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A member named twice is refused at any depth, naming it (read into a map, the last won: a
/// report said `success` then `failure` and counted as a failure; a registration took the
/// second `device_type`), and a value the JSON reader cannot take names its field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_named_twice_is_refused_and_an_unreadable_value_names_its_field() {
    let (dir, input) = tmp_with_input("duplicates");
    let s = Srv::start(config(&dir)).await;
    let admin = s.token("acme", "admin");
    let (pkg, creds) = s.fleet(&admin, &input, &["d1"]).await;
    let v = s.create_rollout(&admin, &rollout_to_all(&pkg)).await;
    let rid = v["rollout_id"].as_str().unwrap().to_string();
    let report = format!(
        r#"{{"device_id":"d1","rollout_id":"{rid}","firmware_version":"2.0.0","status":"success","status":"failure"}}"#
    );
    let got = s
        .raw(
            "POST",
            "/api/v1/devices/d1/ota/report",
            &creds[0],
            report.into_bytes(),
        )
        .await;
    assert_error(&got, 400, "INVALID_ARGUMENT", "duplicate field `status`");
    let (code, _) = s.get(&format!("/api/v1/ota/rollouts/{rid}"), &admin).await;
    assert_eq!(code, 200);
    assert_eq!(
        s.devices_in(&admin, &rid, "failed").await,
        Vec::<String>::new()
    );
    let twice = br#"{"profile_id":"p","device_type":"temp-sensor","device_type":"doorbell",
        "hardware_profile":"acme-sensor-v2","arch":"armv7","installed":{"temp-sensor-fw":"1.0.0"}}"#;
    let got = s
        .raw("PUT", "/api/v1/devices/d2", &admin, twice.to_vec())
        .await;
    assert_error(
        &got,
        400,
        "INVALID_ARGUMENT",
        "duplicate field `device_type`",
    );
    let nested =
        br#"{"profile_id":"p","device_type":"temp-sensor","hardware_profile":"acme-sensor-v2",
        "arch":"armv7","installed":{"temp-sensor-fw":"1.0.0","temp-sensor-fw":"9.0.0"}}"#;
    let got = s
        .raw("PUT", "/api/v1/devices/d2", &admin, nested.to_vec())
        .await;
    assert_error(
        &got,
        400,
        "INVALID_ARGUMENT",
        "installed: duplicate field `temp-sensor-fw`",
    );
    assert_eq!(s.get("/api/v1/devices/d2", &admin).await.0, 404);
    // A body that is not an object (serde reads a struct from an array of its values).
    for body in [&br#"["array body", null]"#[..], b"[]", b"5", b"", b"null"] {
        let got = s
            .raw("PUT", "/api/v1/ota/profiles/arr", &admin, body.to_vec())
            .await;
        assert_error(
            &got,
            400,
            "INVALID_ARGUMENT",
            "body: expected a JSON object",
        );
    }
    assert_eq!(s.get("/api/v1/ota/profiles/arr", &admin).await.0, 404);
    // A rollout's body too, though the library's own parser reads it.
    let got = s
        .raw(
            "POST",
            "/api/v1/ota/rollouts",
            &admin,
            br#"["p", null]"#.to_vec(),
        )
        .await;
    assert_error(
        &got,
        400,
        "INVALID_ARGUMENT",
        "body: expected a JSON object",
    );
    let twice =
        format!(r#"{{"package_id":"{pkg}","target_profile_id":"p","target_profile_id":"q"}}"#);
    let got = s
        .raw("POST", "/api/v1/ota/rollouts", &admin, twice.into_bytes())
        .await;
    assert_error(
        &got,
        400,
        "INVALID_ARGUMENT",
        "duplicate field `target_profile_id`",
    );
    // A number past what JSON readers take names its field.
    let got = s
        .raw(
            "PUT",
            "/api/v1/ota/profiles/q",
            &admin,
            br#"{"description":"x","max_memory_mb":1e400}"#.to_vec(),
        )
        .await;
    assert_error(
        &got,
        400,
        "INVALID_ARGUMENT",
        "max_memory_mb: malformed JSON",
    );
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stream resumes only after an event id of its own rollout: a malformed `Last-Event-ID`,
/// one past what the database holds or another rollout's is refused naming the header (it
/// was ignored, or taken as a position in this rollout's stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_event_id_that_is_not_this_streams_is_refused_naming_it() {
    let (dir, input) = tmp_with_input("last-event-id");
    let s = Srv::start(config(&dir)).await;
    let admin = s.token("acme", "admin");
    let (pkg, _) = s.fleet(&admin, &input, &["d1"]).await;
    let v = s.create_rollout(&admin, &rollout_to_all(&pkg)).await;
    let rid = v["rollout_id"].as_str().unwrap().to_string();
    let open = |last: String| {
        s.http
            .get(format!("{}/api/v1/ota/rollouts/{rid}/events", s.base))
            .bearer_auth(&admin)
            .header("last-event-id", last)
            .send()
    };
    for bad in [
        "garbage".to_string(),
        format!("{rid}:-1:0"),
        format!("{rid}:99999999999999999999999:0"),
        "rol_other:5:0".to_string(),
        "x".repeat(6000),
    ] {
        let r = open(bad.clone()).await.unwrap();
        let code = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or_default();
        assert_error(&(code, v), 400, "INVALID_ARGUMENT", "Last-Event-ID");
    }
    let r = open(format!("{rid}:0:0")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    drop(r);
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_at_the_edge_of_u64_is_clamped_and_one_past_the_end_names_the_range() {
    let (dir, input) = tmp_with_input("hardening-range");
    let (fw, pkg, artifact) = firmware(&input, "2.0.0", false, 70_000);
    let size = artifact.len();
    assert!(size > 65536, "{size}");
    let s = Srv::start(config(&dir)).await;
    let admin = s.token("acme", "admin");
    s.upload(&admin, &fw).await;
    let (code, v) = s
        .call(
            "PUT",
            "/api/v1/ota/profiles/prof",
            &admin,
            Some(&json!({"package_id": pkg})),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let cred = s.register(&admin, "dev-1", &registration("prof")).await;
    let chunk = |range: String| {
        s.http
            .get(format!(
                "{}/api/v1/devices/dev-1/ota/chunk?package_id={pkg}",
                s.base
            ))
            .bearer_auth(&cred)
            .header("range", range)
            .send()
    };

    // Every byte asked for: the grant is the first chunk.
    let r = chunk(format!("bytes=0-{}", u64::MAX)).await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        &format!("bytes 0-65535/{size}")
    );
    assert_eq!(r.bytes().await.unwrap().len(), 65536);

    // From past the end: refused, naming the header, in the API's error shape.
    let r = chunk(format!("bytes={size}-")).await.unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert!((400..500).contains(&status), "{status} {v}");
    assert!(v["message"].as_str().unwrap().starts_with("range:"), "{v}");
    let r = chunk("bytes=9-3".into()).await.unwrap();
    assert_eq!(r.status(), 400);

    // Without a Range: a length of 0 is refused naming the length, not the offset.
    let got = s
        .get(
            &format!("/api/v1/devices/dev-1/ota/chunk?package_id={pkg}&offset=0&length=0"),
            &cred,
        )
        .await;
    assert_error(&got, 400, "INVALID_ARGUMENT", "length:");
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_point_the_server_at_another_tenants_stored_artifact() {
    let (dir, input) = tmp_with_input("hardening-store");
    let (fw, pkg, _) = firmware(&input, "2.0.0", false, 70_000);
    let s = Srv::start(config(&dir)).await;
    let acme = s.token("acme", "admin");
    let globex = s.token("globex", "admin");
    s.upload(&acme, &fw).await;
    assert!(dir.join(format!("data/artifacts/acme/{pkg}.enc")).is_file());

    // globex names acme's stored artifact: refused before the server opens it, so the
    // answer says nothing of its size or checksum.
    let mut theirs = fw.clone();
    theirs["artifact_uri"] = Value::String(format!("store://acme/{pkg}.enc"));
    let got = s
        .call("POST", "/api/v1/ota/packages", &globex, Some(&theirs))
        .await;
    assert_error(&got, 403, "PERMISSION_DENIED", "artifact_uri");
    let message = got.1["message"].as_str().unwrap();
    assert!(
        !message.contains("size") && !message.contains("sha256"),
        "{message}"
    );
    let got = s.get(&format!("/api/v1/ota/packages/{pkg}"), &globex).await;
    assert_eq!(got.0, 404, "{got:?}");

    // Its own part of the store is its own: acme may name its own stored artifact.
    let mut own = fw.clone();
    own["artifact_uri"] = Value::String(format!("store://acme/{pkg}.enc"));
    let got = s
        .call("POST", "/api/v1/ota/packages", &acme, Some(&own))
        .await;
    assert_eq!(got.0, 200, "{got:?}");

    // No scheme: not a URI, 400 (it was 501, "not built yet"); another scheme: 501.
    for bad in ["", "a b", "../x", "1http://x"] {
        let mut v = fw.clone();
        v["artifact_uri"] = Value::String(bad.into());
        let got = s
            .call("POST", "/api/v1/ota/packages", &acme, Some(&v))
            .await;
        assert_error(&got, 400, "INVALID_ARGUMENT", "artifact_uri: ");
    }
    let mut v = fw.clone();
    v["artifact_uri"] = Value::String("https://cdn.example.com/fw.enc".into());
    let got = s
        .call("POST", "/api/v1/ota/packages", &acme, Some(&v))
        .await;
    assert_error(&got, 501, "UNIMPLEMENTED", "artifact_uri: ");
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_naming_no_valid_subject_is_refused_not_recorded_as_someone_else() {
    let dir = common::tmp("hardening-sub");
    let s = Srv::start(config(&dir)).await;
    let token = s
        .running
        .state
        .jwt
        .token("alice@example.com", "acme", "admin", 3600);
    let got = s.get("/api/v1/ota/packages", &token).await;
    assert_error(&got, 401, "UNAUTHENTICATED", "authorization: sub:");
    let token = s
        .running
        .state
        .jwt
        .token("alice.example.com", "acme", "admin", 3600);
    assert_eq!(s.get("/api/v1/ota/packages", &token).await.0, 200);
    s.stop();

    // `ota-server token` mints no such token: the flag is named.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ota-server"))
        .args([
            "token",
            "--tenant",
            "acme",
            "--subject",
            "alice@example.com",
        ])
        .args(["--jwt-secret", "a-secret-of-the-test-long-enough-to-use"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--subject"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ota-server"))
        .args([
            "token",
            "--tenant",
            "acme",
            "--subject",
            "alice.example.com",
        ])
        .args(["--jwt-secret", "a-secret-of-the-test-long-enough-to-use"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Without a secret, a data directory that holds none is refused, naming --data-dir (a
    // secret made there would sign tokens no server takes); the server's own, given before
    // `token` as the server takes it, signs tokens that server takes.
    let token = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ota-server"))
            .args(args)
            .env_remove("OTA_DATA_DIR")
            .env_remove("OTA_JWT_SECRET")
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let empty = dir.join("no-server-here");
    let out = token(&[
        "token".as_ref(),
        "--tenant".as_ref(),
        "acme".as_ref(),
        "--data-dir".as_ref(),
        empty.as_os_str(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--data-dir"));
    assert!(!empty.join("jwt-secret").exists());
    let data = dir.join("data");
    let mut c = config(&dir);
    c.jwt_secret = None;
    let s = Srv::start(c).await;
    let out = token(&[
        "--data-dir".as_ref(),
        data.as_os_str(),
        "token".as_ref(),
        "--tenant".as_ref(),
        "acme".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let minted = String::from_utf8(out.stdout).unwrap();
    assert_eq!(s.get("/api/v1/ota/packages", minted.trim()).await.0, 200);
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_repeated_after_its_join_was_lost_joins_the_running_rollout() {
    let (dir, input) = tmp_with_input("hardening-join");
    let (fw, pkg, _) = firmware(&input, "2.0.0", false, 70_000);
    let s = Srv::start(config(&dir)).await;
    let admin = s.token("acme", "admin");
    s.upload(&admin, &fw).await;
    s.empty_profile(&admin, "p").await;
    s.register(&admin, "dev-1", &registration("p")).await;
    let v = s.create_rollout(&admin, &rollout_to_all(&pkg)).await;
    let rid = v["rollout_id"].as_str().unwrap();
    // dev-2's registration committed its row, then its process died before the device
    // joined the rollout: the row as a registration writes it, and nothing else.
    let mut body = registration("p");
    body["device_id"] = json!("dev-2");
    body["labels"] = json!({"profile": "p"});
    body.as_object_mut().unwrap().remove("profile_id");
    let profile = ota_core::DeviceProfile::from_json_with_limits(
        body.to_string().as_bytes(),
        &ota_core::Limits::DEFAULT,
    )
    .unwrap();
    sqlx::query(
        "INSERT INTO devices (tenant, device_id, profile_id, profile, credential_hash, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind("acme")
    .bind("dev-2")
    .bind("p")
    .bind(serde_json::to_string(&profile).unwrap())
    .bind("0".repeat(64))
    .bind(1_i64)
    .execute(&s.running.state.db)
    .await
    .unwrap();
    let listing = format!("/api/v1/ota/rollouts/{rid}/devices");
    let (code, before) = s.get(&listing, &admin).await;
    assert_eq!(code, 200, "{before}");
    assert!(state_in(&before, "dev-2").is_null(), "{before}");
    // The retry finds the row (200, no credential) and joins what the first could not.
    let (code, v) = s
        .call(
            "PUT",
            "/api/v1/devices/dev-2",
            &admin,
            Some(&registration("p")),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let (_, after) = s.get(&listing, &admin).await;
    assert!(!state_in(&after, "dev-2").is_null(), "{after}");
    // Repeated again, it changes nothing in a rollout that has it: no new record.
    let trail = s.audit(&admin, rid).await;
    let (code, _) = s
        .call(
            "PUT",
            "/api/v1/devices/dev-2",
            &admin,
            Some(&registration("p")),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(s.audit(&admin, rid).await, trail);
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// An operator's request the rollout refuses names the field at fault: the wave to approve,
/// the rollback package a rollback needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_operator_request_names_its_field() {
    let (dir, input) = tmp_with_input("hardening-fields");
    let (fw, pkg, _) = firmware(&input, "2.0.0", false, 70_000);
    let s = Srv::start(config(&dir)).await;
    let admin = s.token("acme", "admin");
    s.upload(&admin, &fw).await;
    s.empty_profile(&admin, "p").await;
    s.register(&admin, "dev-1", &registration("p")).await;
    let mut body = rollout_to_all(&pkg);
    body["canary_percent"] = json!(50);
    body["waves"] = json!([{"percent": 100, "gate": "approval"}]);
    let v = s.create_rollout(&admin, &body).await;
    let rid = v["rollout_id"].as_str().unwrap();
    let approve = |n: u32| format!("/api/v1/ota/rollouts/{rid}/waves/{n}/approve");
    let got = s.call("POST", &approve(7), &admin, None).await;
    assert!(got.0 >= 400, "{got:?}");
    assert!(
        got.1["message"].as_str().unwrap().starts_with("wave: "),
        "{got:?}"
    );
    let got = s.act(&admin, rid, "rollback").await;
    assert!(got.0 >= 400, "{got:?}");
    let msg = got.1["message"].as_str().unwrap();
    assert!(msg.starts_with("rollback_package_id: "), "{got:?}");
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
