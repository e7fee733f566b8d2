//! The id index's tests: built in bucket order, it finds every device and reports the first
//! named again; warming it changes nothing.

use super::*;

fn ids(names: &[String]) -> Ids {
    let mut ids = Ids::default();
    for n in names {
        assert!(ids.push(n));
    }
    ids
}

#[test]
fn the_id_index_built_in_bucket_order_finds_every_device() {
    for n in [0, 1, 7, 8, 1000, 70_000] {
        let names: Vec<String> = (0..n).map(|i| format!("dev-{i:06}")).collect();
        let ids = ids(&names);
        let by_id = ById::build(&ids).unwrap();
        assert_eq!(by_id.len(), n);
        for (i, name) in names.iter().enumerate() {
            assert_eq!(by_id.get(&ids, name), Some(i as u32), "{name} of {n}");
        }
        assert_eq!(by_id.get(&ids, "dev-x"), None);
    }
}

#[test]
fn the_first_device_named_again_is_the_one_reported() {
    let names: Vec<String> = ["a", "b", "c", "b", "a", "d", "b"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(ById::build(&ids(&names)).unwrap_err(), 3);
    let mut many: Vec<String> = (0..5000).map(|i| format!("dev-{i}")).collect();
    many.push("dev-4321".into());
    many.push("dev-17".into());
    assert_eq!(ById::build(&ids(&many)).unwrap_err(), 5000);
}

#[test]
fn warming_the_index_reads_any_id_and_finds_the_same_devices() {
    let names: Vec<String> = (0..3000).map(|i| format!("dev-{i}")).collect();
    let ids = ids(&names);
    let by_id = ById::build(&ids).unwrap();
    // Known ids, unknown ones and the empty id, in groups larger and smaller than WARM.
    let mut keys: Vec<&str> = names.iter().rev().map(String::as_str).collect();
    keys.extend(["", "dev-x", "dev-3000"]);
    for group in keys.chunks(WARM + 1) {
        by_id.warm(&ids, group.iter().copied());
    }
    by_id.warm(&ids, std::iter::empty());
    for (i, name) in names.iter().enumerate() {
        assert_eq!(by_id.get(&ids, name), Some(i as u32));
    }
    assert_eq!(by_id.get(&ids, "dev-x"), None);
    assert_eq!(ids.first_byte(0), b'd');
    assert_eq!(ids.first_byte(u32::MAX), 0, "past the end reads nothing");
}
