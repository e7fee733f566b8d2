//! SBOM validation (SPDX 2.3 and CycloneDX 1.5 JSON) and compliance coverage.

use ota_core::sbom::{self, SbomFormat};
use ota_core::{Limits, Package, Sha256Digest, Status};
use ota_tests::read_fixture;

#[test]
fn valid_documents_validate() {
    let s = sbom::validate(
        SbomFormat::Spdx23,
        &read_fixture("sbom/valid-spdx-2.3.json"),
        &Limits::DEFAULT,
    )
    .unwrap();
    assert_eq!(
        (s.name.as_deref(), s.components),
        (Some("yolo-v8n-2.1.0"), 2)
    );
    let c = sbom::validate(
        SbomFormat::CycloneDx15,
        &read_fixture("sbom/valid-cyclonedx-1.5.json"),
        &Limits::DEFAULT,
    )
    .unwrap();
    assert_eq!((c.name.as_deref(), c.components), (Some("resnet50"), 2));
}

#[test]
fn invalid_documents_name_the_field() {
    let cases = [
        ("spdx-wrong-version", SbomFormat::Spdx23, "spdxVersion"),
        (
            "spdx-missing-namespace",
            SbomFormat::Spdx23,
            "documentNamespace",
        ),
        (
            "spdx-bad-checksum",
            SbomFormat::Spdx23,
            "packages[0].checksums[0].checksumValue",
        ),
        (
            "spdx-bad-license",
            SbomFormat::Spdx23,
            "packages[1].licenseConcluded",
        ),
        (
            "spdx-file-without-sha1",
            SbomFormat::Spdx23,
            "files[0].checksums",
        ),
        (
            "spdx-bad-creator",
            SbomFormat::Spdx23,
            "creationInfo.creators[0]",
        ),
        (
            "cyclonedx-wrong-spec",
            SbomFormat::CycloneDx15,
            "specVersion",
        ),
        (
            "cyclonedx-bad-hash",
            SbomFormat::CycloneDx15,
            "components[0].hashes[0].content",
        ),
        (
            "cyclonedx-bad-type",
            SbomFormat::CycloneDx15,
            "components[1].type",
        ),
        (
            "cyclonedx-bad-serial",
            SbomFormat::CycloneDx15,
            "serialNumber",
        ),
        (
            "cyclonedx-bad-license-id",
            SbomFormat::CycloneDx15,
            "components[0].licenses[0].license.id",
        ),
    ];
    for (name, format, path) in cases {
        let e = sbom::validate(
            format,
            &read_fixture(&format!("sbom/invalid-{name}.json")),
            &Limits::DEFAULT,
        )
        .unwrap_err();
        assert_eq!(e.status(), Status::Invalid, "{name}");
        assert!(e.faults().iter().any(|f| f.path == path), "{name}: {e}");
    }
    // The wrong format for the document is caught too.
    let e = sbom::validate(
        SbomFormat::CycloneDx15,
        &read_fixture("sbom/valid-spdx-2.3.json"),
        &Limits::DEFAULT,
    )
    .unwrap_err();
    assert_eq!(e.status(), Status::Invalid, "{e}");
    let e = sbom::validate(SbomFormat::Spdx23, b"[]", &Limits::DEFAULT).unwrap_err();
    assert_eq!(e.status(), Status::Invalid, "{e}");
    assert!(e.faults().iter().any(|f| f.path == "."), "{e}");
    assert_eq!(
        sbom::validate(SbomFormat::Spdx23, b"{", &Limits::DEFAULT)
            .unwrap_err()
            .status(),
        Status::JsonSyntax
    );
}

#[test]
fn coverage_counts_packages_with_a_matching_valid_sbom() {
    let spdx = read_fixture("sbom/valid-spdx-2.3.json");
    let bad = read_fixture("sbom/invalid-spdx-wrong-version.json");
    let mut with = serde_json::from_slice::<serde_json::Value>(&read_fixture(
        "packages/valid/model-tensorrt-orin-nx.json",
    ))
    .unwrap();
    with["sbom"]["sha256"] = serde_json::json!(Sha256Digest::of(&spdx).to_hex());
    let with = Package::from_json(with.to_string().as_bytes()).unwrap();
    let without =
        Package::from_json(&read_fixture("packages/valid/seed-004-firmware.json")).unwrap();
    let mut wrong_hash = with.clone();
    wrong_hash.sbom.as_mut().unwrap().sha256 = Sha256Digest::of(b"other");
    let mut invalid = with.clone();
    invalid.sbom.as_mut().unwrap().sha256 = Sha256Digest::of(&bad);
    let c = sbom::coverage(
        [
            (with.sbom.as_ref(), Some(spdx.as_slice())),
            (without.sbom.as_ref(), None),
            (wrong_hash.sbom.as_ref(), Some(spdx.as_slice())),
            (invalid.sbom.as_ref(), Some(bad.as_slice())),
            (with.sbom.as_ref(), None),
        ],
        &Limits::DEFAULT,
    );
    assert_eq!((c.total, c.covered), (5, 1));
    assert!((c.percent() - 20.0).abs() < 1e-9);
    assert_eq!(sbom::coverage([], &Limits::DEFAULT).percent(), 100.0);
}
