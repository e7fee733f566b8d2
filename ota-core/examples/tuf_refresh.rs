//! Times the core's TUF updater over a repository in a directory: a refresh from scratch (a
//! fresh state directory each run), then, when a target name is given, the search for it.
//! The measurement half of `benches/tuf_refresh.sh`, which runs python-tuf's client on the
//! same files in the same run.
//!
//! ```text
//! cargo run --release -p ota-core --example tuf_refresh -- METADATA_DIR RUNS [TARGET]
//! ```
//!
//! Prints the mean time per run in nanoseconds.

use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ota_core::UnixMs;
use ota_core::tuf::{Config, Input, Output, Updater};

fn drive(u: &mut Updater, input: Input, metadata: &Path, state: &Path, now: UnixMs) -> Output {
    u.handle(input, now).expect("an input the updater takes");
    for _ in 0..1_000_000 {
        let next = match u.poll().expect("the updater concludes") {
            Output::Load { role_file } => Input::Loaded {
                bytes: std::fs::read(state.join(&role_file)).ok(),
                role_file,
            },
            Output::Fetch { url_path, .. } => match std::fs::read(metadata.join(&url_path)) {
                Ok(bytes) => Input::Fetched { url_path, bytes },
                Err(e) => Input::FetchFailed {
                    url_path,
                    not_found: e.kind() == std::io::ErrorKind::NotFound,
                    detail: e.to_string(),
                },
            },
            Output::Persist { role_file, bytes } => {
                std::fs::write(state.join(role_file), bytes).expect("writing the state");
                continue;
            }
            concluded => return concluded,
        };
        u.handle(next, now)
            .expect("an answer the updater asked for");
    }
    panic!("the updater did not conclude");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(metadata), Some(runs)) =
        (args.get(1), args.get(2).and_then(|r| r.parse::<u32>().ok()))
    else {
        eprintln!("usage: tuf_refresh METADATA_DIR RUNS [TARGET]");
        std::process::exit(2);
    };
    let metadata = Path::new(metadata);
    let root = std::fs::read(metadata.join("1.root.json")).expect("METADATA_DIR/1.root.json");
    let now = UnixMs(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    );
    let mut total = 0u128;
    for run in 0..runs {
        let state =
            std::env::temp_dir().join(format!("ota-tuf-bench-{}-{run}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).expect("a state directory");
        let t = Instant::now();
        let mut u = Updater::new(&root, Config::default()).expect("a trusted root");
        std::fs::write(state.join("root.json"), &root).expect("writing the root");
        let out = drive(&mut u, Input::Refresh, metadata, &state, now);
        assert_eq!(out, Output::Refreshed, "the refresh");
        if let Some(name) = args.get(3) {
            let out = drive(
                &mut u,
                Input::FindTarget { name: name.clone() },
                metadata,
                &state,
                now,
            );
            assert!(matches!(out, Output::Found(_)), "the search: {out:?}");
        }
        total += t.elapsed().as_nanos();
        let _ = std::fs::remove_dir_all(&state);
    }
    println!("{}", total / u128::from(runs.max(1)));
}
