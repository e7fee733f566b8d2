//! The fleet-level compatibility check, in devices per second.
//!
//! There is no outside tool that does this job to compare against, so the reference measured
//! in the same run is the per-device `check` (which builds a full report for every device):
//! the ratio shows what the allocation-free fleet path buys.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ota_core::compat;

fn fleet_check(c: &mut Criterion) {
    let package = ota_benches::yolo_package();
    let mut group = c.benchmark_group("compat");
    group.sample_size(10);
    {
        let n = 1_000_000usize;
        let fleet = ota_sim::fleet::mixed_jetsons(n, 7);
        let eligible = compat::check_fleet(&package, &fleet).eligible.len();
        eprintln!("fleet of {n}: {eligible} eligible");
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("check_fleet/{n}"), |b| {
            b.iter(|| compat::check_fleet(&package, &fleet))
        });
        group.bench_function(format!("reference: check per device/{n}"), |b| {
            b.iter(|| {
                fleet
                    .iter()
                    .filter(|d| compat::check(&package, d).compatible)
                    .count()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, fleet_check);
criterion_main!(benches);
