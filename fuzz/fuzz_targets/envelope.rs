//! The DSSE envelope parser and verifier: never panics; whatever it accepts was signed by the
//! trusted key, is a valid sealed package, and re-verifies from its own JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ota_core::Limits;
use ota_core::sign::{self, SigningKey, TrustedKeys};

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_secret([1; 32]);
    let trusted: TrustedKeys = [key.public_key()].into_iter().collect();
    if let Ok(env) = sign::Envelope::from_json(data, &Limits::DEFAULT) {
        let again = sign::Envelope::from_json(env.to_json().as_bytes(), &Limits::DEFAULT).expect("round trip");
        assert_eq!(again, env);
    }
    for threshold in [1, 2] {
        if let Ok(v) = sign::verify(data, &trusted, threshold, &Limits::DEFAULT) {
            assert_eq!(threshold, 1);
            assert_eq!(v.signed_by(), &[key.key_id()]);
            assert_eq!(v.chunks().len(), ota_core::chunk::ChunkTable::count_for(v.package().size_bytes));
            let json = v.envelope_json().expect("dsse");
            assert!(sign::verify(json.as_bytes(), &trusted, 1, &Limits::DEFAULT).is_ok());
        }
    }
});
