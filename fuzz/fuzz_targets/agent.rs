//! Arbitrary sequences of agent inputs — assignments good and bad, chunks good and bad,
//! swaps, probe results, restores, ticks and power cuts — on a simulated device. Never
//! panics, and the active slot always holds a whole version: the old one or the new one.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ota_core::assignment::Assignment;
use ota_core::agent::Input;
use ota_core::probe::ProbeResult;
use ota_core::sign::{self, VerifiedPackage};
use ota_core::{DeviceProfile, Limits};
use ota_tests::device::{Device, config, healthy};

const OLD: &[u8] = b"firmware 1.2.0";

struct Fixture {
    good: (Assignment, Vec<u8>, Vec<u8>),
    others: Vec<Assignment>,
    /// Every whole version the active slot may hold.
    versions: Vec<Vec<u8>>,
}

fn publish(version: &str, signer: u8, size: usize, rollback: bool) -> (VerifiedPackage, Vec<u8>, Vec<u8>) {
    let plaintext = ota_tests::noise(size, size as u64 + signer as u64);
    let mut p = ota_tests::firmware_package();
    p.version = version.parse().unwrap();
    p.rollback = rollback.then(|| ota_tests::rollback_from("2.0.0"));
    let artifact = ota_tests::seal_into(&mut p, &plaintext);
    let key = ota_tests::signing_key(signer);
    let env = sign::sign(&p, &[&key]).unwrap();
    let trusted = [key.public_key()].into_iter().collect();
    (sign::verify_envelope(env, &trusted, 1, &Limits::DEFAULT).unwrap(), artifact, plaintext)
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let assign = |v: &VerifiedPackage| Assignment::new(v, ota_tests::seal_key(), None, None).unwrap();
        let (g, ga, gp) = publish("2.0.0", 1, 150_000, false);
        let mut versions = vec![OLD.to_vec(), gp.clone()];
        let others = [("1.0.0", 1, false), ("3.0.0", 9, false), ("1.5.0", 1, true)]
            .iter()
            .map(|(v, s, r)| {
                let (p, _, plain) = publish(v, *s, 2_000, *r);
                versions.push(plain);
                assign(&p)
            })
            .collect();
        Fixture { good: (assign(&g), ga, gp), others, versions }
    })
}

fn device_profile() -> DeviceProfile {
    DeviceProfile::from_json(
        br#"{"device_id":"d","device_type":"temp-sensor","hardware_profile":"b","arch":"armv7","installed":{"temp-sensor-fw":"1.2.0"}}"#,
    )
    .unwrap()
}

#[derive(Arbitrary, Debug)]
enum Op {
    Assign { which: u8 },
    Chunk { index: u8, flip: bool },
    Drain { budget: u8 },
    Swapped,
    Probe { healthy: bool },
    Restored,
    Tick { ms: u16 },
    PowerCut,
}

fuzz_target!(|ops: Vec<Op>| {
    let f = fixture();
    let trusted = [ota_tests::signing_key(1).public_key()].into_iter().collect();
    let mut d = Device::new(config(device_profile(), trusted), OLD, healthy());
    let (good, artifact, _) = &f.good;
    for op in ops.into_iter().take(300) {
        if d.agent.is_none() {
            d.boot();
        }
        match op {
            Op::Assign { which } => {
                let a = match usize::from(which) % (f.others.len() + 1) {
                    0 => good.clone(),
                    i => f.others[i - 1].clone(),
                };
                let _ = d.assign(a);
            }
            Op::Chunk { index, flip } => {
                let count = artifact.len().div_ceil(65536);
                let i = usize::from(index) % count;
                let start = i * 65536;
                let mut data = artifact[start..(start + 65536).min(artifact.len())].to_vec();
                if flip {
                    data[0] ^= 1;
                }
                let _ = d.chunk(start as u64, &data);
            }
            Op::Drain { budget } => {
                let _ = d.drain(&mut Some(usize::from(budget)));
            }
            Op::Swapped => {
                let _ = d.handle(Input::Swapped);
            }
            Op::Probe { healthy } => {
                let _ = d.handle(Input::ProbeResult(ProbeResult { healthy, detail: String::new() }));
            }
            Op::Restored => {
                let _ = d.handle(Input::Restored);
            }
            Op::Tick { ms } => {
                d.now = d.now + u64::from(ms) * 10;
                let _ = d.handle(Input::Tick);
            }
            Op::PowerCut => d.power_cut(),
        }
        let active = d.disk.active_bytes();
        assert!(
            f.versions.contains(&active),
            "the active slot holds no whole version ({} bytes)",
            active.len()
        );
    }
});
