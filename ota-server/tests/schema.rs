//! The answers of the API conform to the schemas the OpenAPI document gives them: every
//! field an answer holds is documented, every required one is there, and each has its
//! documented type. (A list answered as `{"packages": [...]}` was documented as a bare
//! array; a client generated from the document could not read it.)

mod common;

use common::{Srv, config, registration_naming, tmp_with_input};
use serde_json::{Value, json};

/// Where `v` departs from `schema` (resolving `$ref`s in `doc`), each with its JSON path.
fn departures(doc: &Value, schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default();
        let target = &doc["components"]["schemas"][name];
        assert!(target.is_object(), "{at}: {r} is not in the document");
        return departures(doc, target, v, at, out);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            let fits = alts.iter().any(|s| {
                let mut e = Vec::new();
                departures(doc, s, v, at, &mut e);
                e.is_empty()
            });
            if !fits {
                out.push(format!("{at}: fits none of {key}: {v}"));
            }
            return;
        }
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            departures(doc, s, v, at, out);
        }
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let typed = types.is_empty()
        || types.contains(&kind)
        || (kind == "integer" && types.contains(&"number"));
    if !typed {
        out.push(format!("{at}: a {kind}, documented as {types:?}"));
        return;
    }
    if let Some(values) = schema["enum"].as_array()
        && !values.contains(v)
    {
        out.push(format!("{at}: {v} is not one of the documented {values:?}"));
    }
    match v {
        Value::Object(o) => {
            let props = schema["properties"].as_object();
            for (k, x) in o {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => departures(doc, s, x, &format!("{at}.{k}"), out),
                    None if props.is_some() => out.push(format!("{at}.{k}: not documented")),
                    None => {}
                }
            }
            for r in schema["required"].as_array().into_iter().flatten() {
                let r = r.as_str().unwrap_or_default();
                if !o.contains_key(r) {
                    out.push(format!("{at}.{r}: required, missing"));
                }
            }
        }
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                departures(doc, &schema["items"], x, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Asserts `answer` to `method path` conforms to the document's schema for its status.
fn conforms(doc: &Value, method: &str, path: &str, (status, answer): &(u16, Value)) {
    let op = &doc["paths"][path][method.to_ascii_lowercase()];
    assert!(op.is_object(), "{method} {path} is not in the document");
    let response = &op["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path}: status {status} is not documented: {answer}"
    );
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} ({status}): no JSON schema documented"
    );
    let mut out = Vec::new();
    departures(doc, schema, answer, "$", &mut out);
    assert!(
        out.is_empty(),
        "{method} {path} ({status}): {out:#?}\n{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answers_conform_to_the_documented_schemas() {
    let doc: Value = serde_json::from_str(&ota_server::openapi::document()).unwrap();
    let (dir, input) = tmp_with_input("schema");
    let s = Srv::start(config(&dir)).await;
    let admin = s.token("acme", "admin");
    let (fw, pkg, _) = common::firmware(&input, "2.0.0", false, 70_000);
    let up = s
        .call("POST", "/api/v1/ota/packages", &admin, Some(&fw))
        .await;
    conforms(&doc, "POST", "/api/v1/ota/packages", &up);
    let list = s.get("/api/v1/ota/packages", &admin).await;
    conforms(&doc, "GET", "/api/v1/ota/packages", &list);
    let one = s.get(&format!("/api/v1/ota/packages/{pkg}"), &admin).await;
    conforms(&doc, "GET", "/api/v1/ota/packages/{id}", &one);
    let missing = s.get("/api/v1/ota/packages/pkg_0000", &admin).await;
    conforms(&doc, "GET", "/api/v1/ota/packages/{id}", &missing);
    let profile = s
        .call("PUT", "/api/v1/ota/profiles/p", &admin, Some(&json!({})))
        .await;
    conforms(&doc, "PUT", "/api/v1/ota/profiles/{id}", &profile);
    let mut creds = Vec::new();
    for d in ["d1", "d2"] {
        creds.push(s.register(&admin, d, &registration_naming(d)).await);
    }
    let created = s
        .call(
            "POST",
            "/api/v1/ota/rollouts",
            &admin,
            Some(
                &json!({"package_id": pkg, "target_profile_id": "p", "canary_percent": 100,
                         "failure_threshold_percent": 50}),
            ),
        )
        .await;
    conforms(&doc, "POST", "/api/v1/ota/rollouts", &created);
    let rid = created.1["rollout_id"].as_str().unwrap().to_string();
    let report = s
        .report(
            "d1",
            &creds[0],
            &json!({"device_id": "d1", "rollout_id": rid, "status": "in_progress"}),
        )
        .await;
    conforms(
        &doc,
        "POST",
        "/api/v1/devices/{device_id}/ota/report",
        &report,
    );
    let paused = s.act(&admin, &rid, "pause").await;
    conforms(&doc, "POST", "/api/v1/ota/rollouts/{id}/pause", &paused);
    let bad = s
        .call(
            "POST",
            "/api/v1/ota/rollouts",
            &admin,
            Some(&json!({"package_id": 5})),
        )
        .await;
    conforms(&doc, "POST", "/api/v1/ota/rollouts", &bad);
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
