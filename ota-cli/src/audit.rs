//! `ota audit verify`: a rollout's hash-chained audit trail.

use std::path::PathBuf;

use ota_core::audit;
use serde_json::json;

use crate::out::{self, CliError, Outcome};

/// `ota audit verify LOG`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The trail: one JSON record per line, as the rollout engine wrote them.
    log: PathBuf,
}

/// Exit 0 when every record's hash and link hold; 1 naming the first that does not.
pub fn verify(a: &VerifyArgs) -> Result<Outcome, CliError> {
    let text = out::read_text(&a.log)?;
    let file = a.log.display().to_string();
    let checked =
        audit::parse_lines(&text).and_then(|records| audit::verify(&records).map(|c| (records, c)));
    match checked {
        Ok((records, chain)) => {
            let first = records.first().map(|r| r.at);
            let last = records.last().map(|r| r.at);
            Ok(Outcome::ok(
                format!(
                    "{file}: {} record(s), chain intact, head {}",
                    chain.next_seq, chain.tip
                ),
                json!({"ok": true, "file": file, "records": chain.next_seq, "head": chain.tip,
                       "first_at": first, "last_at": last}),
            ))
        }
        Err(e) => Ok(Outcome::failed(
            format!("{file}: {e}"),
            json!({"ok": false, "file": file, "status": e.status().name(), "error": e.to_string()}),
        )),
    }
}
