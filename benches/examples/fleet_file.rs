//! Writes the input of the `ota check --fleet` measurement in `benches/table.sh`: a fleet of
//! mixed Jetson profiles (`ota_sim::fleet::mixed_jetsons`, the compat bench's fleet, about a
//! fifth of which fit) as one JSON array, and the package it is checked against (the
//! benchmarks' `yolo_package`) as a package statement.
//!
//! ```text
//! cargo run --release -p ota-benches --example fleet_file -- DEVICES FLEET.json PACKAGE.json
//! ```

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [n, fleet, package] = args.as_slice() else {
        eprintln!("usage: fleet_file DEVICES FLEET.json PACKAGE.json");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("DEVICES: a number");
    let profiles = ota_sim::fleet::mixed_jetsons(n, 7);
    let file = std::fs::File::create(fleet).expect("creating the fleet file");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    out.write_all(b"[\n").expect("writing the fleet");
    for (i, p) in profiles.iter().enumerate() {
        let sep = if i + 1 == profiles.len() { "\n" } else { ",\n" };
        write!(out, "{}{sep}", p.to_json()).expect("writing the fleet");
    }
    out.write_all(b"]\n").expect("writing the fleet");
    out.flush().expect("writing the fleet");
    std::fs::write(package, ota_benches::yolo_package().to_json()).expect("writing the package");
}
