//! Writes MIB MiB of dense float32 weights (`ota_sim::dense_weights`, in 16 MiB pieces of
//! seeds 0, 1, ...: compressible by about 7 %, like a model's) to a file: the input that
//! `benches/table.sh` packs with `ota pack` to time `ota unpack` and `ota verify` as whole
//! processes.
//!
//! ```text
//! cargo run --release -p ota-benches --example weights_file -- MIB OUT
//! ```

use std::io::Write;

const PIECE: usize = 16 << 20;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mib, path] = args.as_slice() else {
        eprintln!("usage: weights_file MIB OUT");
        std::process::exit(2);
    };
    let mut left = mib.parse::<usize>().expect("MIB: a number") << 20;
    let file = std::fs::File::create(path).expect("creating the weights file");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut seed = 0;
    while left > 0 {
        let n = left.min(PIECE);
        out.write_all(&ota_sim::dense_weights(n, seed))
            .expect("writing the weights");
        left -= n;
        seed += 1;
    }
    out.flush().expect("writing the weights");
}
