//! Malformed requests get the API's error shape (`{"code","message"}`, the message naming the
//! parameter or field), never a plain-text answer or a panic: path and query parameters that
//! do not parse, a body with more than one JSON document, a `Range` header at the edge of
//! `u64`. And a tenant's `store://` artifact URI reaches only its own part of the store.

mod common;

use common::{Srv, assert_error, config, firmware, registration, tmp_with_input};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_path_query_and_body_are_refused_naming_what_is_wrong() {
    let (dir, input) = tmp_with_input("malformed");
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
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_at_the_edge_of_u64_is_clamped_and_one_past_the_end_names_the_range() {
    let (dir, input) = tmp_with_input("malformed-range");
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
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_point_the_server_at_another_tenants_stored_artifact() {
    let (dir, input) = tmp_with_input("malformed-store");
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
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
