//! `ota audit verify`: a rollout's hash-chained audit trail.

use std::path::PathBuf;

use ota_core::audit::{self, AuditHead};
use serde_json::json;

use crate::out::{self, CliError, Outcome};

/// `ota audit verify LOG [--head SEQ:HASH]`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The trail: one JSON record per line, as the rollout engine wrote them.
    log: PathBuf,
    /// The head the trail must end at, `SEQ:HASH`: the last record's sequence number and
    /// hash, as the rollout's status (`audit_head`) and snapshot carry it. A trail whose last
    /// records were dropped still links; only its head shows the loss.
    #[arg(long, value_name = "SEQ:HASH")]
    head: Option<String>,
}

/// Exit 0 when every record's hash and link hold (and the trail ends at `--head`); 1 naming
/// the first that does not, or for an empty trail; 2 for a malformed `--head`. Only with
/// `--head` is the trail called intact: without it, records dropped from the end go unseen.
pub fn verify(a: &VerifyArgs) -> Result<Outcome, CliError> {
    let head: Option<AuditHead> = a
        .head
        .as_deref()
        .map(|h| {
            h.parse()
                .map_err(|e| CliError::usage(format!("--head: {e}")))
        })
        .transpose()?;
    let text = out::read_text(&a.log, ota_core::Limits::DEFAULT.max_fleet_bytes)?;
    let file = a.log.display().to_string();
    let checked = audit::parse_lines(&text).and_then(|records| {
        let chain = match &head {
            Some(h) => audit::verify_with_head(&records, h),
            None => audit::verify(&records),
        };
        chain.map(|c| (records, c))
    });
    match checked {
        Ok((records, chain)) => {
            let first = records.first().map(|r| r.at);
            let last = records.last().map(|r| r.at);
            let anchored = head.is_some();
            let head = chain.head().map(|h| h.to_string());
            let head = head.as_deref().unwrap_or("(empty)");
            // Without the head kept apart from the trail, a trail cut short links as well as
            // a whole one: only an anchored trail is called intact.
            let verdict = if anchored {
                "chain intact, ends at the given head".to_string()
            } else {
                "the records link, but the trail is not anchored: records dropped from its \
                 end, or report lines edited after its last whole record, go unseen without \
                 --head SEQ:HASH (the rollout's audit_head)"
                    .to_string()
            };
            Ok(Outcome::ok(
                format!(
                    "{file}: {} record(s), {verdict}, head {head}",
                    chain.next_seq
                ),
                json!({"ok": true, "file": file, "records": chain.next_seq, "head": head,
                       "anchored": anchored, "intact": anchored,
                       "first_at": first, "last_at": last}),
            ))
        }
        Err(e) => Ok(Outcome::failed(
            format!("{file}: {e}"),
            json!({"ok": false, "file": file, "status": e.status().name(),
                   "error": format!("{file}: {e}")}),
        )),
    }
}
