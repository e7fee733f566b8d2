//! A real nats-server for the tests that publish events.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `nats-server` binary, or `None` when it is not installed (and `OTA_REQUIRE_NATS` is
/// not set: CI sets it, and then a missing nats-server fails).
pub fn server() -> Option<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nats-server"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let found = candidates
        .into_iter()
        .chain([
            PathBuf::from("/usr/sbin/nats-server"),
            PathBuf::from("/usr/bin/nats-server"),
        ])
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("OTA_REQUIRE_NATS").is_none(),
            "OTA_REQUIRE_NATS is set but nats-server is not installed"
        );
        eprintln!("nats-server is not installed: skipping");
    }
    found
}

/// A nats-server on 127.0.0.1, stopped when dropped.
pub struct Nats(Child);

impl Nats {
    /// Starts `bin` on `port` and waits (5 s at most) until it listens.
    pub fn start(bin: &PathBuf, port: u16) -> Nats {
        Self::start_with(bin, port, &[])
    }

    /// [`Nats::start`] with its HTTP monitoring on `monitor` (`/connz` lists the clients).
    pub fn start_monitored(bin: &PathBuf, port: u16, monitor: u16) -> Nats {
        Self::start_with(bin, port, &["-m", &monitor.to_string()])
    }

    /// [`Nats::start`] with JetStream on, storing its streams under `store`.
    pub fn start_jetstream(bin: &PathBuf, port: u16, store: &std::path::Path) -> Nats {
        Self::start_with(bin, port, &["-js", "-sd", store.to_str().unwrap()])
    }

    fn start_with(bin: &PathBuf, port: u16, extra: &[&str]) -> Nats {
        let nats = Nats(
            Command::new(bin)
                .args(["-a", "127.0.0.1", "-p", &port.to_string()])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return nats;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("nats-server did not listen on {port}");
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
