//! The device profile parser: never panics, whatever it accepts round-trips, and its
//! capabilities and a compatibility check against a fixed model package do not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ota_core::{DeviceProfile, Package, compat};

const PACKAGE: &str = include_str!("../../tests/fixtures/packages/valid/model-tensorrt-orin-nx.json");

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = DeviceProfile::from_json(data) {
        let json = d.to_json();
        let again = DeviceProfile::from_json(json.as_bytes()).expect("what was written parses");
        assert_eq!(again, d);
        let _ = d.capabilities();
        let package = Package::from_json(PACKAGE.as_bytes()).expect("fixture");
        let report = compat::check(&package, &d);
        assert_eq!(report.compatible, compat::fits(&package, &d));
    }
});
