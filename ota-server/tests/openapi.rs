//! The checked-in OpenAPI document matches the code. `OTA_BLESS=1` rewrites it.

#[test]
fn the_openapi_document_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let doc = ota_server::openapi::document();
    if std::env::var_os("OTA_BLESS").is_some() {
        std::fs::write(&path, &doc).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == doc,
        "ota-server/openapi.json is stale: run `OTA_BLESS=1 cargo test -p ota-server --test openapi`"
    );
    // Every route of the router is documented.
    let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let paths = v["paths"].as_object().unwrap();
    let routes = ota_server::routes();
    for route in &routes {
        assert!(paths.contains_key(*route), "{route} is not in the document");
    }
    assert_eq!(paths.len(), routes.len());
}
