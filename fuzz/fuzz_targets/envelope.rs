//! The DSSE envelope parser and verifier: never panics; whatever it accepts was signed by the
//! trusted key, is a valid sealed package, and re-verifies from its own JSON; and the
//! streamed verifier (`sign::verify_reader`) comes to the same verdict on the same bytes.
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
        let whole = sign::verify(data, &trusted, threshold, &Limits::DEFAULT);
        let streamed = sign::verify_reader(
            std::io::Cursor::new(data),
            &trusted,
            threshold,
            &Limits::DEFAULT,
            Box::new(ota_core::chunk::MemoryTableStore::default()),
        );
        match (&whole, &streamed) {
            (Ok(w), Ok(s)) => {
                assert_eq!(w.package(), s.package());
                assert_eq!(w.id(), s.id());
            }
            (Err(w), Err(s)) => assert_eq!(w.status(), s.status(), "{w} / {s}"),
            _ => panic!("whole {whole:?}, streamed {streamed:?}"),
        }
        if let Ok(v) = whole {
            assert_eq!(threshold, 1);
            assert_eq!(v.signed_by(), &[key.key_id()]);
            assert_eq!(v.chunks().len(), ota_core::chunk::ChunkTable::count_for(v.package().size_bytes));
            let json = v.envelope_json().expect("dsse");
            assert!(sign::verify(json.as_bytes(), &trusted, 1, &Limits::DEFAULT).is_ok());
        }
    }
});
