//! The TUF route against references measured in the same run:
//!
//! - a verified download of a 64 MiB target (length and SHA-256 checked as it streams) vs
//!   `sha256sum` of the same file;
//! - a refresh from scratch (root, timestamp, snapshot, targets: signatures, versions, hashes)
//!   of a repository with 300 targets, vs python-tuf's `Updater.refresh()` on the same files
//!   (timed inside Python, so interpreter start-up is not counted; skipped without python-tuf).

use std::hint::black_box;
use std::process::Command;

use criterion::Throughput;
use ota_benches::{median_ns, print_ratios, scratch_file, sealed_package, shell};
use ota_core::sign::SigningKey;
use ota_host::tuf::client::Client;
use ota_host::tuf::repo::{Expiries, Repo, Role, Roles};
use ota_sim::dense_weights;

const MB: usize = 1 << 20;
const TARGETS: usize = 300;

const PY_REFRESH: &str = r#"
import shutil, sys, tempfile, time
from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface

class Files(FetcherInterface):
    def _fetch(self, url):
        try:
            with open(url[len("file://"):], "rb") as f:
                return iter([f.read()])
        except FileNotFoundError:
            raise DownloadHTTPError("not found", 404)

repo, runs = sys.argv[1], int(sys.argv[2])
root = open(repo + "/metadata/1.root.json", "rb").read()
times = []
for _ in range(runs):
    d = tempfile.mkdtemp()
    t = time.perf_counter()
    u = Updater(metadata_dir=d, metadata_base_url="file://" + repo + "/metadata/",
                target_base_url="file://" + repo + "/targets/", bootstrap=root, fetcher=Files())
    u.refresh()
    times.append(time.perf_counter() - t)
    shutil.rmtree(d)
print(sum(times) / len(times) * 1e9)
"#;

fn main() {
    let mut c = ota_benches::criterion();
    let key = SigningKey::from_secret([1; 32]);
    let role = Role {
        keys: vec![key.public_key()],
        threshold: 1,
    };
    let roles = Roles {
        root: role.clone(),
        targets: role.clone(),
        snapshot: role.clone(),
        timestamp: role,
    };
    let now = ota_core::UnixMs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    );
    let keys = [key];
    let dir = scratch_file("tuf-placeholder", b"").with_file_name("tuf-repo");
    let _ = std::fs::remove_dir_all(&dir);
    let repo = Repo::create(&dir, &roles, &keys, &Expiries::from(now)).unwrap();

    // One large target, and many small ones for the refresh.
    let (big, big_artifact) = sealed_package(&dense_weights(64 * MB, 5));
    let big_path = scratch_file("tuf-big.enc", &big_artifact);
    repo.add_package("big.enc", &big_path, &big, &keys, &Expiries::from(now))
        .unwrap();
    let (small, small_artifact) = sealed_package(&dense_weights(4096, 6));
    let small_path = scratch_file("tuf-small.enc", &small_artifact);
    for i in 0..TARGETS - 1 {
        repo.add_package(
            &format!("fleet/model-{i:04}.enc"),
            &small_path,
            &small,
            &keys,
            &Expiries::from(now),
        )
        .unwrap();
    }
    let root = std::fs::read(repo.metadata_dir().join("1.root.json")).unwrap();
    let metadata = format!("file://{}", repo.metadata_dir().display());
    let targets = format!("file://{}", repo.targets_dir().display());
    let client = Client::new(root, &metadata, &targets).unwrap();
    let trusted = client.refresh(now).unwrap();
    let tough_file = repo
        .targets_dir()
        .join(format!("{}.big.enc", big.sha256.to_hex()));

    let mut g = c.benchmark_group("tuf-download");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(big_artifact.len() as u64));
    g.bench_function("ota", |b| {
        b.iter(|| black_box(trusted.download("big.enc", &mut std::io::sink()).unwrap()))
    });
    g.bench_function("reference-sha256sum", |b| {
        b.iter(|| shell(&format!("sha256sum {} > /dev/null", tough_file.display())))
    });
    g.finish();

    let mut g = c.benchmark_group("tuf-refresh");
    g.sample_size(20);
    g.bench_function("ota", |b| {
        b.iter(|| black_box(client.refresh(now).unwrap().versions()))
    });
    g.finish();

    c.final_summary();
    print_ratios(&[(
        "tuf-download",
        "ota",
        "reference-sha256sum",
        big_artifact.len() as u64,
    )]);
    let python = Command::new("python3")
        .args(["-c", PY_REFRESH, dir.to_str().unwrap(), "20"])
        .output();
    let py_ns = python.ok().filter(|o| o.status.success()).and_then(|o| {
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse::<f64>()
            .ok()
    });
    match (median_ns("tuf-refresh", "ota"), py_ns) {
        (Some(ours), Some(theirs)) => println!(
            "tuf-refresh    ota {:.1} ms  python-tuf {:.1} ms  ({TARGETS} targets)  {:.2}x",
            ours / 1e6,
            theirs / 1e6,
            theirs / ours
        ),
        (Some(ours), None) => println!(
            "tuf-refresh    ota {:.1} ms ({TARGETS} targets); python-tuf not installed (pip install tuf)",
            ours / 1e6
        ),
        _ => println!("tuf-refresh    (not measured in this run)"),
    }
}
