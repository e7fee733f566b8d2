//! A device updating itself: the agent (a sans-IO state machine) is fed an assignment and
//! the artifact's chunks in a shuffled order, and the host carries out what it asks —
//! persist, fetch, swap, probe, report — until the update is committed. README.md's device
//! snippet is the part between the `README` markers; `cargo run -p ota-core --example device`
//! runs it. The host here keeps its slots in memory; `ota-agent` is the daemon that keeps
//! them on disk.

use std::io::Write;
use std::sync::{Arc, Mutex};

use ota_core::agent::{AgentConfig, AgentRecord, AgentState, DeviceIo};
use ota_core::assignment::Assignment;
use ota_core::download::Staging;
use ota_core::probe::ProbeResult;
use ota_core::{Limits, Package, UnixMs, seal, sign};

/// Two A/B slots in memory, each labelled with what it holds, and a staging area.
#[derive(Default)]
struct Host {
    slots: [Arc<Mutex<Vec<u8>>>; 2],
    labels: [String; 2],
    active: usize,
    staging: Vec<u8>,
    record: Option<String>,
    reports: Vec<String>,
}

impl Staging for Host {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.staging.write_at(offset, data)
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.staging.read_at(offset, buf)
    }
}

/// The inactive slot's writer.
struct SlotWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SlotWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("slot").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl DeviceIo for Host {
    fn open_slot(&mut self) -> std::io::Result<Box<dyn Write + Send>> {
        let inactive = Arc::clone(&self.slots[1 - self.active]);
        inactive.lock().expect("slot").clear();
        Ok(Box::new(SlotWriter(inactive)))
    }
}

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The publisher's side, as in the publisher example: firmware 2.0.0, sealed and signed.
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let signing_key = ota_core::keys::SigningKey::generate(&mut rng);
    let key = seal::SealKey::generate(&mut rng);
    let mut firmware = vec![0u8; 300_000];
    getrandom::fill(&mut firmware)?;
    let (artifact, sealed) = seal::seal_bytes(&key, [7; 16], &firmware)?;
    let mut package = Package::from_json(include_bytes!(
        "../../tests/fixtures/packages/valid/seed-004-firmware.json"
    ))?;
    package.version = "2.0.0".parse()?;
    package.set_sealed(&sealed);
    let envelope = sign::sign(&package, &[&signing_key])?;
    let trusted: sign::TrustedKeys = [signing_key.public_key()].into_iter().collect();
    let verified = sign::verify_envelope(envelope, &trusted, 1, &Limits::DEFAULT)?;
    let assignment = Assignment::new(&verified, key, Some("rol_4c7e".parse()?), None)
        .ok_or("verified from a whole envelope, so it has one")?;

    // The device: a sensor on firmware 1.2.0 that trusts the publisher's key and probes its
    // health by running /bin/true.
    let config = AgentConfig::from_json(
        format!(
            r#"{{"device": {{"device_id": "dev_8f3a", "device_type": "temp-sensor",
                "hardware_profile": "acme-sensor-v2", "arch": "armv7",
                "installed": {{"temp-sensor-fw": "1.2.0"}}}},
              "trusted_keys": ["{}"],
              "probe_policy": {{"initial_delay_ms": 0, "interval_ms": 0, "successes_needed": 1}},
              "default_probe": {{"kind": "exec", "path": "/bin/true", "timeout_ms": 1000}},
              "exec_allowlist": ["/bin/true"]}}"#,
            signing_key.public_key().to_hex()
        )
        .as_bytes(),
        &Limits::DEFAULT,
    )?;
    let mut io = Host::default();
    io.labels[0] = r#"{"name":"temp-sensor-fw","version":"1.2.0"}"#.into();
    let last_record = None;
    let mut now = UnixMs(1_000);
    let mut order: Vec<u64> = Vec::new();

    // README: device
    use ota_core::agent::{Agent, Input, Output};

    let mut agent = Agent::new(config, last_record, now, &mut io); // last_record: None on a new device
    agent.handle(Input::assignment(assignment), now, &mut io)?; // refused unless signed, compatible, no downgrade
    while agent.state() != AgentState::Idle {
        while let Some(out) = agent.poll() {
            // in order: the record to persist first
            match out {
                Output::Persist(record) => io.record = Some(record.to_json()), // durably, replacing the last
                Output::Fetch(chunk) => order.push(chunk.offset), // fetch chunk.offset, chunk.length, any order
                Output::Swap { to } => {
                    // make the slot holding `to` active: label it first, and do nothing when the
                    // active slot holds it already (a swap repeated after a power cut)
                    if io.labels[io.active] != to.to_json() {
                        io.labels[1 - io.active] = to.to_json();
                        io.active = 1 - io.active;
                    }
                    agent.handle(Input::Swapped, now, &mut io)?;
                }
                Output::Probe { spec, .. } => {
                    let healthy = std::process::Command::new("/bin/true").status()?.success();
                    println!("probe {spec:?}: healthy {healthy}");
                    let result = ProbeResult {
                        healthy,
                        detail: String::new(),
                    };
                    agent.handle(Input::ProbeResult(result), now, &mut io)?;
                }
                Output::RestorePrevious { from } => {
                    // only while the slot holding `from` is active, the other one again
                    if io.labels[io.active] == from.to_json() {
                        io.active = 1 - io.active;
                    }
                    agent.handle(Input::Restored, now, &mut io)?;
                }
                Output::Report(report) => io.reports.push(report.to_json()), // to the control plane
                _ => {}
            }
        }
        // The chunks asked for, in any order (here, last first); a bad one is asked for again.
        while let Some(offset) = order.pop() {
            let end = artifact.len().min(offset as usize + 65_536);
            agent.handle(
                Input::Chunk {
                    offset,
                    data: &artifact[offset as usize..end],
                },
                now,
                &mut io,
            )?;
        }
        now = agent.poll_timeout().unwrap_or(now).max(now); // then Input::Tick at that instant
        agent.handle(Input::Tick, now, &mut io)?;
    }
    // README: end

    let active = io.slots[io.active].lock().expect("slot").clone();
    assert_eq!(active, firmware, "the new firmware is active");
    let record = AgentRecord::from_json(
        io.record.as_deref().unwrap_or("").as_bytes(),
        &Limits::DEFAULT,
    )?;
    println!(
        "installed {:?}",
        record
            .installed
            .get("temp-sensor-fw")
            .map(|v| v.to_string())
    );
    println!("{}", io.reports.last().expect("a report"));
    assert!(
        io.reports
            .last()
            .is_some_and(|r| r.contains(r#""status":"success""#))
    );
    Ok(())
}
