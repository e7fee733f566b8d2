//! Peak resident memory of the device path on a 1 GiB artifact.
//!
//! The parent seals 1 GiB of model-like data into a file (once, cached under `target/`),
//! then runs a child process that does exactly what a device does: accepts every chunk in
//! shuffled order into staging on disk, verifying each against the signed table, and installs
//! the verified prefix as it grows into a slot file. The child reports its peak RSS (VmHWM)
//! and, as the baseline measured in the same run, its RSS before the download started.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use ota_core::Limits;
use ota_core::download::{Download, Install, Staging};
use ota_core::seal::{SealKey, Sealer};
use ota_core::sign::{self, SigningKey};

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

fn child(dir: &std::path::Path) {
    let envelope = std::fs::read(dir.join("envelope.json")).unwrap();
    let signer = SigningKey::from_secret([1; 32]);
    let trusted = [signer.public_key()].into_iter().collect();
    let verified = sign::verify(&envelope, &trusted, 1, &Limits::DEFAULT).unwrap();
    let key = SealKey::from_bytes(ota_benches::SEAL_KEY);
    let before = vm("VmRSS:");
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
    let slot = File::create(dir.join("slot")).unwrap();
    let mut download = Download::new(&verified);
    let mut install = Install::new(&verified, &key, std::io::BufWriter::new(slot));
    // Shuffled, as a flaky link delivers: a deterministic permutation of the chunk indices.
    let mut order = download.plan(usize::MAX);
    ota_sim::Rng::new(0x2545_f491_4f6c_dd1d).shuffle(&mut order);
    let mut buf = vec![0u8; 65536];
    let start = std::time::Instant::now();
    for r in order {
        let chunk = &mut buf[..r.length as usize];
        source.seek(SeekFrom::Start(r.offset)).unwrap();
        source.read_exact(chunk).unwrap();
        download.accept(r.offset, chunk, &mut staging).unwrap();
        install.advance(&mut download, &mut staging).unwrap();
    }
    let (opened, _) = install.finish().unwrap();
    let secs = start.elapsed().as_secs_f64();
    let size = verified.package().size_bytes;
    println!(
        "device path, {} MiB artifact ({} MiB plaintext), shuffled chunks, staging and slot on disk: \
         peak RSS {} KiB (VmHWM), {} KiB before the download; {:.1} s, {:.0} MiB/s of artifact",
        size >> 20,
        opened.plaintext_size >> 20,
        vm("VmHWM:"),
        before,
        secs,
        size as f64 / (1 << 20) as f64 / secs
    );
    assert!(size >= GIB, "the artifact is smaller than 1 GiB");
}

fn main() {
    let dir = ota_benches::criterion_dir().with_file_name("bench-rss");
    if std::env::var_os("OTA_RSS_CHILD").is_some() {
        return child(&dir);
    }
    std::fs::create_dir_all(&dir).unwrap();
    if !dir.join("envelope.json").exists() {
        eprintln!("sealing a 1 GiB artifact into {} (once)...", dir.display());
        let key = SealKey::from_bytes(ota_benches::SEAL_KEY);
        let out = std::io::BufWriter::new(File::create(dir.join("artifact.enc")).unwrap());
        let mut sealer = Sealer::new(&key, ota_benches::SEAL_IV, out).unwrap();
        // Dense float weights compress by about 7 %: 1.1 GiB of them seal to over 1 GiB.
        let mut written = 0u64;
        let mut seed = 0;
        while written < GIB + GIB / 10 {
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
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .env("OTA_RSS_CHILD", "1")
        .status()
        .unwrap();
    assert!(status.success());
}
