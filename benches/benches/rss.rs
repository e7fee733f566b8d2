//! Peak resident memory of the device path, at 256 MiB and 1 GiB: is it constant whatever
//! the artifact's size?
//!
//! The parent seals model-like data into a file per size (once, cached under `target/`),
//! then runs a child process per size and mode that does exactly what a device does:
//! accepts every chunk in shuffled order into staging on disk, verifying each against the
//! signed table, and installs into a slot file — either the verified prefix as it grows, on
//! one thread, or once everything is staged, on two threads. The child reports its peak RSS
//! (VmHWM) and, as the baseline measured in the same run, its RSS before the envelope was
//! read, so the package and its chunk table count against the device path. The envelope is
//! verified as it streams from its file (`sign::verify_reader`), its chunk table written to a
//! file beside staging, as a device with more artifact than memory does.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use ota_core::Limits;
use ota_core::chunk::ChunkTable;
use ota_core::download::{Download, Install, Staging};
use ota_core::seal::{SealKey, Sealer};
use ota_core::sign::{self, SigningKey};
use ota_host::pipeline;
use ota_host::table_file::TableFile;

const GIB: u64 = 1 << 30;

fn vm(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse().ok())
        .unwrap_or(0)
}

struct FileStaging(File);

impl Staging for FileStaging {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.0.write_all_at(data, offset)
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
}

/// How the child installs.
#[derive(Clone, Copy)]
enum Mode {
    /// Accept each chunk and install the prefix as it grows, on one thread.
    Overlapped,
    /// Accept every chunk, then install on two threads (`ota_host::pipeline::install`).
    StagedTwoThreads,
}

fn child(dir: &std::path::Path, mode: Mode) {
    // The baseline comes first, before the envelope is read or parsed: what the package and
    // its chunk table cost counts against the device path.
    let before = vm("VmRSS:");
    let signer = SigningKey::from_secret([1; 32]);
    let trusted = [signer.public_key()].into_iter().collect();
    // The envelope is streamed past the signature checks, and the chunk table goes to a file
    // beside staging: neither is held in memory.
    let envelope = File::open(dir.join("envelope.json")).unwrap();
    let table = TableFile::new(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("table"))
            .unwrap(),
    );
    let verified =
        sign::verify_reader(envelope, &trusted, 1, &Limits::DEFAULT, Box::new(table)).unwrap();
    let key = SealKey::from_bytes(ota_benches::SEAL_KEY);
    let mut source = File::open(dir.join("artifact.enc")).unwrap();
    let mut staging = FileStaging(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("staging"))
            .unwrap(),
    );
    let slot = std::io::BufWriter::new(File::create(dir.join("slot")).unwrap());
    let mut download = Download::new(&verified);
    // Shuffled, as a flaky link delivers: a deterministic permutation of the chunk indices,
    // computed one at a time (a list of every chunk would grow with the artifact and count
    // against the device path; a device plans a window of requests, not all of them).
    let size = verified.package().size_bytes;
    let count = download.chunk_count() as u64;
    let order = ota_sim::Permutation::new(count, 0x2545_f491_4f6c_dd1d);
    let mut buf = vec![0u8; 65536];
    let start = std::time::Instant::now();
    let mut install = match mode {
        Mode::Overlapped => Some(Install::new(&verified, &key, slot)),
        Mode::StagedTwoThreads => None,
    };
    for i in 0..count {
        let r = ChunkTable::range(order.at(i) as usize, size);
        let chunk = &mut buf[..(r.end - r.start) as usize];
        source.seek(SeekFrom::Start(r.start)).unwrap();
        source.read_exact(chunk).unwrap();
        download.accept(r.start, chunk, &mut staging).unwrap();
        if let Some(install) = &mut install {
            install.advance(&mut download, &mut staging).unwrap();
        }
    }
    let opened = match install {
        Some(install) => install.finish().unwrap().0,
        None => {
            let slot = std::io::BufWriter::new(File::create(dir.join("slot")).unwrap());
            pipeline::install(&verified, &key, &mut download, &mut staging, slot, 2)
                .unwrap()
                .0
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let peak = vm("VmHWM:");
    println!(
        "[{}] {:>5} MiB artifact ({:>5} MiB plaintext), {:<34} peak RSS {:>6} KiB, {:>6} KiB before the envelope was read: {:>6} KiB for the device path; {:.1} s",
        dir.file_name().unwrap_or_default().to_string_lossy(),
        size >> 20,
        opened.plaintext_size >> 20,
        match mode {
            Mode::Overlapped => "install as chunks arrive, 1 thread:",
            Mode::StagedTwoThreads => "stage, then install on 2 threads:",
        },
        peak,
        before,
        peak.saturating_sub(before),
        secs,
    );
}

/// Seals about `size` bytes of dense float weights into `dir` (once: cached).
fn seal_once(dir: &std::path::Path, size: u64) {
    std::fs::create_dir_all(dir).unwrap();
    if dir.join("envelope.json").exists() {
        return;
    }
    eprintln!(
        "sealing a {} MiB artifact into {} (once)...",
        size >> 20,
        dir.display()
    );
    let key = SealKey::from_bytes(ota_benches::SEAL_KEY);
    let out = std::io::BufWriter::new(File::create(dir.join("artifact.enc")).unwrap());
    let mut sealer = Sealer::new(&key, ota_benches::SEAL_IV, out).unwrap();
    // Dense float weights compress by about 7 %: 1.1 times the size seals to more than it.
    let mut written = 0u64;
    let mut seed = 0;
    while written < size + size / 10 {
        let piece = ota_sim::dense_weights(16 << 20, seed);
        sealer.write_all(&piece).unwrap();
        written += piece.len() as u64;
        seed += 1;
    }
    let (sealed, mut out) = sealer.finish().unwrap();
    out.flush().unwrap();
    let mut p = ota_benches::firmware_package();
    p.set_sealed(&sealed);
    let env = sign::sign(&p, &[&SigningKey::from_secret([1; 32])]).unwrap();
    std::fs::write(dir.join("envelope.json"), env.to_json()).unwrap();
}

fn main() {
    let root = ota_benches::criterion_dir().with_file_name("bench-rss");
    if let Some(dir) = std::env::var_os("OTA_RSS_CHILD") {
        let mode = match std::env::var("OTA_RSS_MODE").as_deref() {
            Ok("staged") => Mode::StagedTwoThreads,
            _ => Mode::Overlapped,
        };
        return child(std::path::Path::new(&dir), mode);
    }
    println!(
        "peak RSS of the device path, one child process per run (VmHWM - VmRSS at start), {ROUNDS} rounds:"
    );
    let dirs = [GIB / 4, GIB].map(|size| {
        let dir = root.join(format!("{}MiB", size >> 20));
        seal_once(&dir, size);
        dir
    });
    // Interleaved rounds: the baseline itself moves by a hundred KiB or so between runs, so
    // `table.sh` takes the median of each size and mode.
    for _ in 0..ROUNDS {
        for (dir, mode) in dirs
            .iter()
            .flat_map(|d| ["overlapped", "staged"].map(|m| (d, m)))
        {
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .env("OTA_RSS_CHILD", dir)
                .env("OTA_RSS_MODE", mode)
                .status()
                .unwrap();
            assert!(status.success());
        }
    }
}

/// How many times each child runs.
const ROUNDS: usize = 5;
