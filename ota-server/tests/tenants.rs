//! A tenant sees and touches only its own packages, profiles, devices and rollouts, at every
//! endpoint; a device reaches only its own endpoints; tokens are checked.

mod common;

use common::{Srv, assert_error, config, firmware, registration, tmp_with_input};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_and_devices_reach_only_their_own() {
    let (dir, input) = tmp_with_input("tenants");
    let (fw, pkg, _) = firmware(&input, "2.0.0", false, 70_000);
    let s = Srv::start(config(&dir)).await;
    let acme = s.token("acme", "admin");
    let globex = s.token("globex", "admin");

    // acme: a package, a profile, dev-1 in a rollout, dev-2 under a profile-level assignment.
    assert_eq!(
        s.call("POST", "/api/v1/ota/packages", &acme, Some(&fw))
            .await
            .0,
        201
    );
    s.empty_profile(&acme, "prof").await;
    let (code, v) = s
        .call(
            "PUT",
            "/api/v1/ota/profiles/prof2",
            &acme,
            Some(&json!({"package_id": pkg})),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let acme1 = s.register(&acme, "dev-1", &registration("prof")).await;
    let acme2 = s.register(&acme, "dev-2", &registration("prof2")).await;
    let v = s
        .create_rollout(
            &acme,
            &json!({
            "package_id": pkg, "target_profile_id": "prof", "canary_percent": 100}),
        )
        .await;
    let rid = v["rollout_id"].as_str().unwrap().to_string();

    // A device registered while the rollout runs joins it (its wave is open: it is sent).
    let acme3 = s.register(&acme, "dev-3", &registration("prof")).await;
    let (code, a) = s.get("/api/v1/devices/dev-3/ota", &acme3).await;
    assert_eq!(
        (code, a["rollout_id"].as_str()),
        (200, Some(rid.as_str())),
        "{a}"
    );

    // globex has a device of the same id: its own.
    let (code, v) = s
        .call(
            "PUT",
            "/api/v1/devices/dev-1",
            &globex,
            Some(&json!({
        "device_type": "temp-sensor", "hardware_profile": "acme-sensor-v2", "arch": "armv7"})),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let globex1 = v["credential"].as_str().unwrap().to_string();
    let (_, v) = s.get("/api/v1/devices/dev-1", &globex).await;
    assert_eq!(
        v["profile_id"],
        Value::Null,
        "globex sees its own dev-1: {v}"
    );
    let (_, v) = s.get("/api/v1/devices/dev-1/rpc", &globex).await;
    assert_eq!(v["rpc"], json!([]), "{v}");
    let (_, v) = s.get("/api/v1/devices/dev-1/rpc", &acme).await;
    assert_eq!(v["rpc"][0]["method"], "ota_start", "{v}");

    // Every admin endpoint, with globex's token, on acme's things.
    for (method, path, field) in [
        ("GET", format!("/api/v1/ota/packages/{pkg}"), "package_id"),
        ("GET", "/api/v1/ota/profiles/prof".to_string(), "profile_id"),
        ("GET", "/api/v1/devices/dev-2".to_string(), "device_id"),
        ("GET", format!("/api/v1/ota/rollouts/{rid}"), "rollout_id"),
        (
            "POST",
            format!("/api/v1/ota/rollouts/{rid}/pause"),
            "rollout_id",
        ),
        (
            "POST",
            format!("/api/v1/ota/rollouts/{rid}/resume"),
            "rollout_id",
        ),
        (
            "POST",
            format!("/api/v1/ota/rollouts/{rid}/rollback"),
            "rollout_id",
        ),
        (
            "POST",
            format!("/api/v1/ota/rollouts/{rid}/abort"),
            "rollout_id",
        ),
        (
            "POST",
            format!("/api/v1/ota/rollouts/{rid}/waves/1/approve"),
            "rollout_id",
        ),
        (
            "GET",
            format!("/api/v1/ota/rollouts/{rid}/devices"),
            "rollout_id",
        ),
        (
            "GET",
            format!("/api/v1/ota/rollouts/{rid}/audit"),
            "rollout_id",
        ),
        (
            "GET",
            format!("/api/v1/ota/rollouts/{rid}/events"),
            "rollout_id",
        ),
    ] {
        let got = s.call(method, &path, &globex, None).await;
        assert_error(&got, 404, "NOT_FOUND", field);
    }
    for (path, body, field) in [
        (
            "/api/v1/ota/rollouts",
            json!({"package_id": pkg, "target_profile_id": "prof"}),
            "package_id",
        ),
        (
            "/api/v1/ota/profiles/mine",
            json!({"package_id": pkg}),
            "package_id",
        ),
    ] {
        let method = if path.contains("profiles") {
            "PUT"
        } else {
            "POST"
        };
        assert_error(
            &s.call(method, path, &globex, Some(&body)).await,
            404,
            "NOT_FOUND",
            field,
        );
    }
    let (_, v) = s.get("/api/v1/ota/packages", &globex).await;
    assert_eq!(v["packages"], json!([]));
    let (_, v) = s.get("/api/v1/ota/rollouts", &globex).await;
    assert_eq!(v["rollouts"], json!([]));

    // Devices: each reaches its own endpoints, with its own credential only.
    let (code, a) = s.get("/api/v1/devices/dev-1/ota", &acme1).await;
    assert_eq!((code, a["rollout_id"].as_str()), (200, Some(rid.as_str())));
    let (code, _) = s.get("/api/v1/devices/dev-1/ota", &globex1).await;
    assert_eq!(code, 204, "globex's dev-1 has no assignment");
    assert_error(
        &s.get(
            &format!("/api/v1/devices/dev-1/ota/chunk?package_id={pkg}"),
            &globex1,
        )
        .await,
        403,
        "PERMISSION_DENIED",
        "package_id",
    );
    assert_error(
        &s.call(
            "POST",
            "/api/v1/devices/dev-1/ota/report",
            &globex1,
            Some(&json!({
            "device_id": "dev-1", "rollout_id": rid, "status": "success"})),
        )
        .await,
        404,
        "NOT_FOUND",
        "rollout_id",
    );
    for (method, path) in [
        ("GET", "/api/v1/devices/dev-1/ota"),
        ("GET", "/api/v1/devices/dev-1/rpc"),
        ("GET", "/api/v1/devices/dev-1"),
    ] {
        assert_error(
            &s.call(method, path, &acme2, None).await,
            403,
            "PERMISSION_DENIED",
            "device_id",
        );
    }
    assert_error(
        &s.get("/api/v1/ota/packages", &acme1).await,
        403,
        "PERMISSION_DENIED",
        "authorization",
    );
    assert_error(
        &s.get("/api/v1/devices/dev-1/ota", &acme).await,
        403,
        "PERMISSION_DENIED",
        "authorization",
    );
    // The profile-level assignment: dev-2 is in no rollout, and gets prof2's package.
    let (code, a) = s.get("/api/v1/devices/dev-2/ota", &acme2).await;
    assert_eq!(
        (code, a["package_id"].as_str()),
        (200, Some(pkg.as_str())),
        "{a}"
    );
    assert_eq!(a["rollout_id"], Value::Null);
    let (code, _) = s
        .get(
            &format!("/api/v1/devices/dev-2/ota/chunk?package_id={pkg}"),
            &acme2,
        )
        .await;
    assert_eq!(code, 200);

    // Tokens: none, garbage, another secret, expired, an unknown role.
    let r = s
        .http
        .get(format!("{}/api/v1/ota/packages", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let other = ota_server::auth::JwtKeys::from_secret(b"another secret").unwrap();
    let expired = s.running.state.jwt.issue(&ota_server::auth::Claims {
        sub: "alice".into(),
        tenant: "acme".into(),
        role: "admin".into(),
        iat: 1,
        exp: 2,
    });
    for bad in [
        "garbage",
        &other.token("alice", "acme", "admin", 3600),
        &expired,
    ] {
        assert_error(
            &s.get("/api/v1/ota/packages", bad).await,
            401,
            "UNAUTHENTICATED",
            "authorization",
        );
    }
    let root = s.running.state.jwt.token("alice", "acme", "root", 3600);
    assert_error(
        &s.get("/api/v1/ota/packages", &root).await,
        403,
        "PERMISSION_DENIED",
        "role",
    );
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reissued credential replaces the old one at once: the old one, though it was just used
/// (and remembered by the server), is refused afterwards, and the new one works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reissued_credential_revokes_the_old_one_at_once() {
    let dir = common::tmp("reissue");
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let s = common::Srv::start(common::config(&dir)).await;
    let admin = s.token("acme", "admin");
    let device = serde_json::json!({"device_type": "temp-sensor",
        "hardware_profile": "acme-sensor-v2", "arch": "armv7",
        "installed": {"temp-sensor-fw": "1.2.0"}});
    let (code, v) = s
        .call("PUT", "/api/v1/devices/dev-1", &admin, Some(&device))
        .await;
    assert_eq!(code, 201, "{v}");
    let old = v["credential"].as_str().unwrap().to_string();
    let (code, _) = s.get("/api/v1/devices/dev-1", &old).await;
    assert_eq!(code, 200);
    let mut again = device.clone();
    again["issue_credential"] = serde_json::json!(true);
    let (code, v) = s
        .call("PUT", "/api/v1/devices/dev-1", &admin, Some(&again))
        .await;
    assert_eq!(code, 200, "{v}");
    let new = v["credential"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    let got = s.get("/api/v1/devices/dev-1", &old).await;
    common::assert_error(&got, 401, "UNAUTHENTICATED", "authorization");
    let (code, _) = s.get("/api/v1/devices/dev-1", &new).await;
    assert_eq!(code, 200);
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// With replicas, a credential reissued on one replica stops working on the other too,
/// although the other remembered it: within a lease period (`--lease-ms`), after which a
/// replica looks a remembered credential up again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_reissued_on_one_replica_is_refused_by_the_other_within_a_lease() {
    let Some(cluster) = common::pg::Cluster::start("reissue-replicas") else {
        return;
    };
    let dir = common::tmp("reissue-replicas");
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let start = |name: &str| {
        let mut c = common::config(&dir.join(name));
        c.database = cluster.url.clone();
        c.lease_ms = 400;
        common::Srv::start(c)
    };
    let a = start("a").await;
    let b = start("b").await;
    let admin = a.token("acme", "admin");
    let device = serde_json::json!({"device_type": "temp-sensor",
        "hardware_profile": "acme-sensor-v2", "arch": "armv7",
        "installed": {"temp-sensor-fw": "1.2.0"}});
    let old = a.register(&admin, "dev-1", &device).await;
    // Replica b finds the credential and remembers it.
    let (code, _) = b.get("/api/v1/devices/dev-1", &old).await;
    assert_eq!(code, 200);
    let mut again = device.clone();
    again["issue_credential"] = serde_json::json!(true);
    let (code, v) = a
        .call("PUT", "/api/v1/devices/dev-1", &admin, Some(&again))
        .await;
    assert_eq!(code, 200, "{v}");
    let new = v["credential"].as_str().unwrap().to_string();
    // Refused at once by the replica that reissued it...
    let got = a.get("/api/v1/devices/dev-1", &old).await;
    common::assert_error(&got, 401, "UNAUTHENTICATED", "authorization");
    // ...and by the other once a lease period has passed (bounded: 20 lease periods).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    loop {
        let got = b.get("/api/v1/devices/dev-1", &old).await;
        if got.0 == 401 {
            common::assert_error(&got, 401, "UNAUTHENTICATED", "authorization");
            break;
        }
        assert_eq!(got.0, 200, "{got:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "replica b still takes the replaced credential"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (code, _) = b.get("/api/v1/devices/dev-1", &new).await;
    assert_eq!(code, 200);
    a.stop();
    b.stop();
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
