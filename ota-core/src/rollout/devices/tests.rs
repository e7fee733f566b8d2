//! The id index's tests: built in bucket order, it finds every device and reports the first
//! named again.

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
