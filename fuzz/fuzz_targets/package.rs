//! The package parser: never panics, whatever it accepts round-trips, and the compatibility
//! check runs on it against a fixed device without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ota_core::{DeviceProfile, Package, compat};

const DEVICE: &str = include_str!("../../tests/fixtures/profiles/valid/orin-nx-line-camera.json");

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Package::from_json(data) {
        let json = p.to_json();
        let again = Package::from_json(json.as_bytes()).expect("what was written parses");
        assert_eq!(again, p);
        let device = DeviceProfile::from_json(DEVICE.as_bytes()).expect("fixture");
        let report = compat::check(&p, &device);
        assert_eq!(report.compatible, compat::fits(&p, &device));
    }
});
