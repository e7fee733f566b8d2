//! The model manifest parser: never panics, and whatever it accepts round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ota_core::ModelManifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ModelManifest::from_json(data) {
        let json = m.to_json();
        let again = ModelManifest::from_json(json.as_bytes()).expect("what was written parses");
        assert_eq!(again, m);
    }
});
