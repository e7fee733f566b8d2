//! The rollout engine at fleet scale: 1,000,000 devices of mixed Jetson profiles.
//!
//! Measures, in one process:
//! - creation (compatibility filtering and cohorts included): the median of `OTA_REPEAT`
//!   creations as the service makes them, the compatibility pass on two threads
//!   (`ota_host::rollout::create`), and beside it, interleaved, on the calling thread alone
//!   (`Rollout::create`);
//! - reports: the rollout is driven through its waves to completion, every device sent
//!   reporting `in_progress` then `success`, the host's loop as the engine documents it (one
//!   `handle`, then `poll` until `None`). Timed in blocks of 4,096 reports; the figure is the
//!   median block rate, with the overall rate beside it, and the allocations a report costs
//!   in the timed blocks (counted, so free of the machine's noise; they include the commands
//!   a wave's opening sends). The audit records are serialized (as a host stores them, one
//!   JSON line each) outside the timed blocks, to measure the trail;
//! - the live state, counted on the heap by a counting global allocator (not estimated): the
//!   bytes the rollout holds per device after creation, at its peak during the drive (sampled
//!   after every block), and after the burst, once the rollout completed;
//! - the snapshot's size, and restore (parse and rebuild): the median of `OTA_REPEAT`.
//!
//! No outside system does this job in a process to measure against; the figures to compare
//! with are documented limits: AWS IoT Jobs dispatches at most 1,000 devices a minute, and
//! hawkBit caps a group at 20,000 targets.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use ota_core::audit::AuditRecord;
use ota_core::report::ReportStatus;
use ota_core::rollout::{
    BatchedReport, Create, DeviceState, Input, Output, ReportBatch, Rollout, RolloutState, Snapshot,
};
use ota_core::sign::{self, SigningKey};
use ota_core::{Limits, UnixMs, seal};

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Allocations made (reallocations included), counted the same way.
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed through to the system allocator unchanged; only a counter is
// kept beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's layout, passed through.
        unsafe { System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: the caller's pointer and layout, passed through.
        unsafe { System.dealloc(p, l) }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's layout, passed through.
        unsafe { System.alloc_zeroed(l) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: the caller's pointer, layout and size, passed through.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Reports timed together.
const BLOCK: usize = 4096;

fn main() {
    let n = std::env::var("OTA_FLEET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000usize);
    let repeat = std::env::var("OTA_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5usize)
        .max(1);
    let t = Instant::now();
    let fleet = ota_sim::fleet::mostly_compatible_jetsons(n, 42);
    eprintln!(
        "built a fleet of {n} profiles in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // A signed, sealed model package.
    let mut package = ota_benches::yolo_package();
    let (_, sealed) =
        seal::seal_bytes(&seal::SealKey::from_bytes([1; 32]), [2; 16], b"engine").unwrap();
    package.set_sealed(&sealed);
    let signer = SigningKey::from_secret([1; 32]);
    let env = sign::sign(&package, &[&signer]).unwrap();
    let trusted: sign::TrustedKeys = [signer.public_key()].into_iter().collect();
    let verified = sign::verify_envelope(env, &trusted, 1, &Limits::DEFAULT).unwrap();
    let spec = ota_core::plan::RolloutSpec::from_json(
        serde_json::json!({
            "package_id": verified.id(),
            "target": {"kind": "selector", "device_types": ["line-camera"]},
            "canary_percent": 1,
            "waves": [{"percent": 10}, {"percent": 50}, {"percent": 100}],
            "failure_threshold_percent": 10,
        })
        .to_string()
        .as_bytes(),
        &Limits::DEFAULT,
    )
    .unwrap();
    // `threads` judge the fleet's compatibility (`ota_host::rollout::create`, as the service
    // does); 1 is `Rollout::create` on the calling thread.
    let create = |threads: usize| {
        ota_host::rollout::create(
            Create {
                rollout_id: "rol_scale".parse().unwrap(),
                tenant: "acme".parse().unwrap(),
                spec: spec.clone(),
                package: &verified,
                rollback: None,
                fleet: &fleet,
                by: "bench".parse().unwrap(),
                now: UnixMs(0),
            },
            threads,
        )
        .unwrap()
    };

    // Two threads and one, interleaved.
    let mut creates = Vec::new();
    let mut creates_one = Vec::new();
    for _ in 1..repeat {
        for (threads, times) in [(2, &mut creates), (1, &mut creates_one)] {
            let t = Instant::now();
            let r = create(threads);
            times.push(t.elapsed().as_secs_f64());
            drop(r);
        }
    }
    let t = Instant::now();
    drop(create(1));
    creates_one.push(t.elapsed().as_secs_f64());
    // Allocated before the count starts: the bench's buffer of a block's records.
    let mut records = Vec::with_capacity(2 * BLOCK);
    let mut block_rates = Vec::with_capacity(1 << 12);
    let base = live();
    let t = Instant::now();
    let mut r = create(2);
    creates.push(t.elapsed().as_secs_f64());
    while r.poll().is_some() {}
    let created_bytes = live() - base;
    let s = r.status();
    let targeted: u64 = s.devices.values().sum();
    let per = |bytes: usize| bytes as f64 / targeted as f64;
    println!(
        "create: {targeted} devices in the target ({} eligible, {} incompatible, {} already installed): median {:.3} s of {repeat} (min {:.3}, max {:.3}) with the compatibility pass on 2 threads; on one thread median {:.3} s ({:.2}x)",
        s.eligible,
        s.devices.get(&DeviceState::Incompatible).unwrap_or(&0),
        s.devices.get(&DeviceState::AlreadyInstalled).unwrap_or(&0),
        median(creates.clone()),
        creates.iter().copied().fold(f64::MAX, f64::min),
        creates.iter().copied().fold(0.0, f64::max),
        median(creates_one.clone()),
        median(creates_one.clone()) / median(creates.clone()),
    );

    // Drive to completion, twice: one report per input, then the same in batches.
    let single = drive(
        &mut r,
        false,
        base,
        created_bytes,
        &mut records,
        &mut block_rates,
    );
    let rates = std::mem::take(&mut block_rates);
    let after_bytes = live() - base;
    let per_report = |d: &Drive| d.audit_bytes as f64 / d.reports as f64;
    println!(
        "reports, one per input: {} in {:.2} s: median {:.3} M reports/s over {} blocks of {BLOCK} (overall {:.3} M/s); audit trail {} records, {:.1} MiB as JSON lines, {:.1} bytes per report; {:.2} allocations per report",
        single.reports,
        single.time,
        median(rates.clone()) / 1e6,
        rates.len(),
        single.reports as f64 / single.time / 1e6,
        single.records,
        single.audit_bytes as f64 / (1 << 20) as f64,
        per_report(&single),
        single.allocs as f64 / single.reports as f64,
    );
    let s = r.status();
    println!(
        "live state (counted on the heap): {:.1} bytes/device after create, {:.1} at the peak of the drive, {:.1} after it ({:?}, {} succeeded)",
        per(created_bytes),
        per(single.peak),
        per(after_bytes),
        s.status,
        s.cumulative.succeeded
    );
    let mut b = create(2);
    while b.poll().is_some() {}
    drop(fleet);
    let batched = drive(
        &mut b,
        true,
        base,
        created_bytes,
        &mut records,
        &mut block_rates,
    );
    assert!(b.status().cumulative.succeeded == s.cumulative.succeeded);
    drop(b);
    println!(
        "reports, {BLOCK} per input (Input::Reports): {} in {:.2} s: median {:.3} M reports/s over {} batches (overall {:.3} M/s); audit trail {} records, {:.1} MiB as JSON lines, {:.1} bytes per report; {:.2} allocations per report",
        batched.reports,
        batched.time,
        median(block_rates.clone()) / 1e6,
        block_rates.len(),
        batched.reports as f64 / batched.time / 1e6,
        batched.records,
        batched.audit_bytes as f64 / (1 << 20) as f64,
        per_report(&batched),
        batched.allocs as f64 / batched.reports as f64,
    );

    let t = Instant::now();
    let snap = r.snapshot().to_json();
    let snap_s = t.elapsed().as_secs_f64();
    let mut restores = Vec::new();
    for _ in 0..repeat {
        let t = Instant::now();
        let state = Snapshot::from_json(snap.as_bytes(), &Limits::DEFAULT).unwrap();
        let restored = Rollout::restore(state, &verified, None).unwrap();
        restores.push(t.elapsed().as_secs_f64());
        assert!(restored.same_state(&r));
    }
    println!(
        "snapshot: {:.1} MiB ({:.0} bytes/device) in {snap_s:.2} s; restore: median {:.3} s of {repeat} (min {:.3}, max {:.3})",
        snap.len() as f64 / (1 << 20) as f64,
        snap.len() as f64 / targeted as f64,
        median(restores.clone()),
        restores.iter().copied().fold(f64::MAX, f64::min),
        restores.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "for reference (documented limits, not measured): AWS IoT Jobs dispatches at most 1,000 devices/minute; hawkBit caps a group at 20,000 targets"
    );
}

/// What driving a rollout to completion measured.
struct Drive {
    reports: u64,
    time: f64,
    records: u64,
    audit_bytes: u64,
    /// Allocations in the timed blocks: a figure the machine's noise does not move.
    allocs: u64,
    /// The most bytes the rollout held, sampled after each block.
    peak: usize,
}

/// Drives `r` to completion: every device sent reports in progress, then success; one report
/// per input, or each block of reports as one [`Input::Reports`]. `records` holds the records
/// as [`Rollout::poll`] gives them, boxed, as a host that queues them for its writer would.
#[allow(clippy::vec_box)]
fn drive(
    r: &mut Rollout,
    batched: bool,
    base: usize,
    created_bytes: usize,
    records: &mut Vec<Box<AuditRecord>>,
    block_rates: &mut Vec<f64>,
) -> Drive {
    let rollout_id = r.id().clone();
    let mut d = Drive {
        reports: 0,
        time: 0.0,
        records: 0,
        audit_bytes: 0,
        allocs: 0,
        peak: created_bytes,
    };
    let mut now = UnixMs(1);
    let count = |d: &mut Drive, a: Box<AuditRecord>| {
        d.records += 1;
        d.audit_bytes += a.to_json().len() as u64 + 1;
    };
    loop {
        let before = live();
        let sent: Vec<String> = r
            .devices()
            .filter(|(_, s)| *s == DeviceState::Sent)
            .map(|(d, _)| d.to_string())
            .collect();
        if sent.is_empty() {
            if r.state() != RolloutState::Active {
                break;
            }
            now = now + 1000;
            r.handle(Input::Tick, now).unwrap();
            while let Some(o) = r.poll() {
                if let Output::Audit(a) = o {
                    count(&mut d, a);
                }
            }
            continue;
        }
        // What the bench holds beside the rollout while it reports: the ids to report on.
        let held = live() - before;
        let version = r.package().package().version.clone();
        for block in sent.chunks(BLOCK / 2) {
            let mut todo = Vec::with_capacity(block.len() * 2);
            for id in block {
                for status in [ReportStatus::InProgress, ReportStatus::Success] {
                    todo.push(BatchedReport {
                        device_id: id.parse().unwrap(),
                        status,
                        attempt: 1,
                        // A success names the version it installed.
                        firmware_version: (status == ReportStatus::Success)
                            .then(|| version.clone()),
                        reason: None,
                    });
                }
            }
            let n = todo.len();
            let allocs = ALLOCS.load(Ordering::Relaxed);
            let t = Instant::now();
            if batched {
                let batch = ReportBatch {
                    rollout_id: rollout_id.clone(),
                    reports: todo,
                };
                r.handle(Input::Reports(batch), now).unwrap();
                while let Some(o) = r.poll() {
                    if let Output::Audit(a) = o {
                        records.push(a);
                    }
                }
            } else {
                // In progress, then success, device by device, each naming its attempt, as
                // ota-server and the C ABI feed a report (`Input::device_report`).
                for rep in todo {
                    r.handle(Input::device_report(rep.report(&rollout_id)), now)
                        .unwrap();
                    while let Some(o) = r.poll() {
                        if let Output::Audit(a) = o {
                            records.push(a);
                        }
                    }
                }
            }
            let dt = t.elapsed().as_secs_f64();
            d.allocs += (ALLOCS.load(Ordering::Relaxed) - allocs) as u64;
            d.time += dt;
            d.reports += n as u64;
            block_rates.push(n as f64 / dt);
            for a in records.drain(..) {
                count(&mut d, a);
            }
            d.peak = d.peak.max((live() - base).saturating_sub(held));
        }
    }
    while r.poll().is_some() {}
    d
}
