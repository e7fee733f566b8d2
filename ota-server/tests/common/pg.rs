//! A PostgreSQL cluster of the test's own, on 127.0.0.1 in a temporary directory, started
//! with initdb and pg_ctl (as the `postgres` user when the test runs as root, which
//! PostgreSQL refuses), stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster.
pub struct Cluster {
    dir: PathBuf,
    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub url: String,
    as_postgres: bool,
}

fn bin(name: &str) -> Option<PathBuf> {
    if let Ok(path) = std::env::var("PATH") {
        for d in std::env::split_paths(&path) {
            let p = d.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
        .filter(|p| p.is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    // The tests cannot call geteuid without unsafe code; the owner of /proc/self is the
    // process's user.
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn run(as_postgres: bool, program: &Path, args: &[&str]) -> std::process::Output {
    let mut c = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    c.args(args).output().expect("run a PostgreSQL tool")
}

impl Cluster {
    /// Starts a cluster, or `None` when PostgreSQL is not installed (and
    /// `OTA_REQUIRE_POSTGRES` is not set: CI sets it, and then a missing PostgreSQL fails).
    pub fn start(name: &str) -> Option<Cluster> {
        Self::start_with(name, false)
    }

    /// [`Cluster::start`], with `fsync` on when `durable` (the benches measure with it; the
    /// tests run without, which only matters if the machine itself crashes).
    pub fn start_with(name: &str, durable: bool) -> Option<Cluster> {
        let (Some(initdb), Some(pg_ctl)) = (bin("initdb"), bin("pg_ctl")) else {
            assert!(
                std::env::var_os("OTA_REQUIRE_POSTGRES").is_none(),
                "OTA_REQUIRE_POSTGRES is set but initdb/pg_ctl are not installed"
            );
            eprintln!("PostgreSQL is not installed: skipping the PostgreSQL run");
            return None;
        };
        let as_postgres = is_root();
        let dir = std::env::temp_dir().join(format!("ota-server-pg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if as_postgres {
            let st = Command::new("chown")
                .args(["postgres:", dir.to_str().unwrap()])
                .status()
                .unwrap();
            assert!(st.success(), "chown the cluster directory to postgres");
        }
        let data = dir.join("data");
        let out = run(
            as_postgres,
            &initdb,
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let fsync = if durable { "" } else { " -F" };
        let opts = format!("-h 127.0.0.1 -p {port} -k {}{fsync}", dir.display());
        let out = run(
            as_postgres,
            &pg_ctl,
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                dir.join("log").to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
        Some(Cluster {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            dir,
            as_postgres,
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(pg_ctl) = bin("pg_ctl") {
            let data = self.dir.join("data");
            let _ = run(
                self.as_postgres,
                &pg_ctl,
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
