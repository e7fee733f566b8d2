//! The client workflow of the TUF specification (section 5), as a sans-IO state machine.
//!
//! **The drive loop** (the same as every state machine of this crate). Make the updater with
//! [`Updater::new`] and the trusted root. Then feed one [`Input`] to [`Updater::handle`] with
//! the current time ([`Input::Refresh`], or [`Input::FindTarget`], which refreshes first when
//! needed), drain [`Updater::poll`] carrying out each [`Output`] in order, and answer what it
//! asked for:
//!
//! - [`Output::Load`]: read the role's file from the metadata directory and feed
//!   [`Input::Loaded`] (`None` when there is none);
//! - [`Output::Fetch`]: fetch the path under the metadata base URL, reading at most
//!   `max_length + 1` bytes, and feed [`Input::Fetched`], or [`Input::FetchFailed`] (with
//!   `not_found` for an HTTP 403 or 404, or a missing file);
//! - [`Output::Persist`]: replace the role's file in the metadata directory with the bytes,
//!   atomically, before carrying out any later output;
//! - a conclusion: [`Output::Refreshed`], [`Output::Found`] or [`Output::Failed`].
//!
//! [`Updater::poll_timeout`] is always `None`: the updater waits only on input (the host
//! bounds each fetch).
//!
//! **The steps**, each refusing with its own [`UpdateError`]:
//!
//! 1. The trusted root must be signed by its own threshold (5.2). Then `N.root.json` for
//!    N = version + 1, … (at most [`Config::max_root_rotations`]): each signed by the
//!    threshold of the trusted root and of its own, of type `root`, with version N; each
//!    becomes trusted and is persisted at once (5.3.8). A missing file ends the walk. Then the
//!    final root must not have expired (5.3.10).
//! 2. The local timestamp is loaded (when it verifies, it guards against rollback even
//!    expired). `timestamp.json` (5.4): signed by the root's timestamp threshold, of type
//!    `timestamp`, not older than the trusted one, naming a snapshot not older than the
//!    trusted one names. One of the same version as the trusted one is not used and not
//!    persisted (the trusted one stays, so nothing is fetched for it). Persisted, then it must
//!    not have expired.
//! 3. The local snapshot is used as it is when it verifies and is the version the timestamp
//!    names. Otherwise (5.5) `snapshot.json` (`N.snapshot.json` under consistent snapshots):
//!    the length and hashes the timestamp lists, when it lists them, the root's snapshot
//!    threshold, type `snapshot`, no targets role missing or older than in the trusted
//!    snapshot; persisted; not expired, and the version the timestamp names.
//! 4. `targets` the same way (5.6), against the snapshot: length and hashes when listed,
//!    version, threshold, type, expiry; persisted.
//! 5. A target search (5.7) walks the delegations lazily, pre-order and depth first in the
//!    order listed, loading (or fetching, checked as in 4 against its delegator's keys and
//!    persisted) only the roles that cover the name, ending at a terminating delegation and
//!    after [`Config::max_delegations`] roles. A delegated role the snapshot does not list is
//!    an error.

use std::collections::{BTreeMap, VecDeque};

mod checks;
mod config;
mod input;
mod output;
mod search;

pub use config::Config;
pub use input::Input;
pub use output::{FoundTarget, Output};

use checks::expired;
use search::Walk;

use super::error::UpdateError;
use super::metadata::{self, Root, Snapshot, Targets, Timestamp};
use super::paths;
use crate::UnixMs;

/// A trusted role: what it says, its bytes, and the keys whose signatures on it are valid.
#[derive(Debug, Clone)]
pub struct Held<T> {
    /// What it says.
    pub meta: T,
    /// Its file, as the repository signed it.
    pub bytes: Vec<u8>,
    /// The key ids whose signatures are valid.
    pub signers: Vec<String>,
    /// Those of them that are Ed25519 keys, raw (a package's `signed_by`).
    pub signer_keys: Vec<[u8; 32]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Wait {
    Idle,
    Root {
        version: u64,
        url_path: String,
    },
    TimestampLocal,
    TimestampRemote,
    SnapshotLocal,
    SnapshotRemote {
        url_path: String,
    },
    TargetsLocal {
        role: String,
        parent: String,
    },
    TargetsRemote {
        role: String,
        parent: String,
        url_path: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Job {
    None,
    Refresh,
    Find(String),
}

/// The TUF client workflow, sans IO (see the module docs).
#[derive(Debug, Clone)]
pub struct Updater {
    config: Config,
    now: UnixMs,
    root: Held<Root>,
    first_root: u64,
    timestamp: Option<Held<Timestamp>>,
    snapshot: Option<Held<Snapshot>>,
    targets: BTreeMap<String, Held<Targets>>,
    out: VecDeque<Output>,
    wait: Wait,
    job: Job,
    refreshed: bool,
    walk: Option<Walk>,
}

enum TimestampUpdate {
    New,
    SameVersion,
}

impl Updater {
    /// An updater trusting `root` (a root.json, which must be signed by its own threshold).
    pub fn new(root: &[u8], config: Config) -> Result<Updater, UpdateError> {
        let env = metadata::open("root", "root", root)?;
        let meta = Root::read(&env.signed)?;
        let signers = metadata::verify("root", &env, &meta.keys, meta.role("root"))?;
        let signer_keys = metadata::ed25519_of(&meta.keys, &signers);
        Ok(Updater {
            config,
            now: UnixMs(0),
            first_root: meta.common.version,
            root: Held {
                meta,
                bytes: root.to_vec(),
                signers,
                signer_keys,
            },
            timestamp: None,
            snapshot: None,
            targets: BTreeMap::new(),
            out: VecDeque::new(),
            wait: Wait::Idle,
            job: Job::None,
            refreshed: false,
            walk: None,
        })
    }

    /// Takes one input at time `now`. An input the updater did not ask for is refused (and
    /// changes nothing).
    pub fn handle(&mut self, input: Input, now: UnixMs) -> Result<(), UpdateError> {
        self.now = now;
        let misuse = |detail: String| Err(UpdateError::Misuse { detail });
        match input {
            Input::Tick => Ok(()),
            Input::Refresh | Input::FindTarget { .. } if self.job != Job::None => {
                misuse("a refresh or search is already under way".into())
            }
            Input::Refresh if self.refreshed => misuse("this updater has refreshed already".into()),
            Input::Refresh => {
                self.job = Job::Refresh;
                self.next_root();
                Ok(())
            }
            Input::FindTarget { name } => {
                if let Some(why) = paths::unsafe_target_name(&name) {
                    self.out
                        .push_back(Output::Failed(UpdateError::UnsafeTargetName { name, why }));
                } else if self.refreshed {
                    self.job = Job::Find(name.clone());
                    self.start_walk(name);
                } else {
                    self.job = Job::Find(name);
                    self.next_root();
                }
                Ok(())
            }
            Input::Loaded { role_file, bytes } => {
                match std::mem::replace(&mut self.wait, Wait::Idle) {
                    Wait::TimestampLocal if role_file == "timestamp.json" => {
                        self.timestamp_loaded(bytes)
                    }
                    Wait::SnapshotLocal if role_file == "snapshot.json" => {
                        self.snapshot_loaded(bytes)
                    }
                    Wait::TargetsLocal { role, parent } if role_file == paths::role_file(&role) => {
                        self.targets_loaded(role, parent, bytes)
                    }
                    other => {
                        self.wait = other;
                        return misuse(format!("{role_file} was not asked for"));
                    }
                }
                Ok(())
            }
            Input::Fetched { url_path, bytes } => self.fetched(url_path, Ok(bytes)),
            Input::FetchFailed {
                url_path,
                not_found,
                detail,
            } => self.fetched(url_path, Err((not_found, detail))),
        }
    }

    /// The next output, in order.
    pub fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Always `None`: the updater waits only on input.
    pub fn poll_timeout(&self) -> Option<UnixMs> {
        None
    }

    fn fetched(
        &mut self,
        url_path: String,
        result: Result<Vec<u8>, (bool, String)>,
    ) -> Result<(), UpdateError> {
        let expected = match &self.wait {
            Wait::Root { url_path, .. }
            | Wait::SnapshotRemote { url_path }
            | Wait::TargetsRemote { url_path, .. } => url_path.clone(),
            Wait::TimestampRemote => "timestamp.json".into(),
            _ => String::new(),
        };
        if expected.is_empty() || expected != url_path {
            return Err(UpdateError::Misuse {
                detail: format!("{url_path} was not asked for"),
            });
        }
        let wait = std::mem::replace(&mut self.wait, Wait::Idle);
        let bytes = match (result, &wait) {
            (Ok(bytes), _) => bytes,
            (Err((true, _)), Wait::Root { .. }) => {
                self.root_done();
                return Ok(());
            }
            (Err((_, detail)), _) => {
                self.fail(UpdateError::Fetch { url_path, detail });
                return Ok(());
            }
        };
        let step = match wait {
            Wait::Root { version, .. } => self.update_root(&bytes, version).map(|()| {
                self.out.push_back(Output::Persist {
                    role_file: "root.json".into(),
                    bytes: bytes.clone(),
                });
                self.next_root();
            }),
            Wait::TimestampRemote => self.update_timestamp(&bytes, true).and_then(|u| {
                // An expired timestamp is trusted (it guards the next refresh against
                // rollback) but not persisted, as python-tuf does.
                self.check_expired_timestamp()?;
                if let TimestampUpdate::New = u {
                    self.out.push_back(Output::Persist {
                        role_file: "timestamp.json".into(),
                        bytes: bytes.clone(),
                    });
                }
                self.load_snapshot();
                Ok(())
            }),
            Wait::SnapshotRemote { .. } => self.update_snapshot(&bytes, false).map(|()| {
                self.out.push_back(Output::Persist {
                    role_file: "snapshot.json".into(),
                    bytes: bytes.clone(),
                });
                self.load_role("targets".into(), "root".into());
            }),
            Wait::TargetsRemote { role, parent, .. } => {
                self.update_targets(&role, &parent, &bytes).map(|()| {
                    self.out.push_back(Output::Persist {
                        role_file: paths::role_file(&role),
                        bytes: bytes.clone(),
                    });
                    self.role_ready(role, parent);
                })
            }
            _ => Ok(()),
        };
        if let Err(e) = step {
            self.fail(e);
        }
        Ok(())
    }

    fn fail(&mut self, e: UpdateError) {
        self.wait = Wait::Idle;
        self.job = Job::None;
        self.walk = None;
        self.out.push_back(Output::Failed(e));
    }

    // --- 5.3: the root. -----------------------------------------------------------------------

    fn next_root(&mut self) {
        // A root at the last version there is has no next one.
        let Some(version) = self.root.meta.common.version.checked_add(1) else {
            self.root_done();
            return;
        };
        if version
            > self
                .first_root
                .saturating_add(self.config.max_root_rotations)
        {
            self.root_done();
            return;
        }
        let url_path = paths::role_url_path("root", Some(version));
        self.out.push_back(Output::Fetch {
            url_path: url_path.clone(),
            max_length: self.config.root_max_length,
        });
        self.wait = Wait::Root { version, url_path };
    }

    fn root_done(&mut self) {
        let c = &self.root.meta.common;
        if c.expired(self.now) {
            let e = expired("root", c);
            self.fail(e);
            return;
        }
        self.out.push_back(Output::Load {
            role_file: "timestamp.json".into(),
        });
        self.wait = Wait::TimestampLocal;
    }

    // --- 5.4: the timestamp. ------------------------------------------------------------------

    fn timestamp_loaded(&mut self, bytes: Option<Vec<u8>>) {
        if let Some(bytes) = bytes {
            // A local timestamp that verifies guards against rollback, even expired; one
            // that does not is ignored.
            let _ = self.update_timestamp(&bytes, false);
        }
        self.out.push_back(Output::Fetch {
            url_path: "timestamp.json".into(),
            max_length: self.config.timestamp_max_length,
        });
        self.wait = Wait::TimestampRemote;
    }

    // --- 5.5: the snapshot. -------------------------------------------------------------------

    fn load_snapshot(&mut self) {
        self.out.push_back(Output::Load {
            role_file: "snapshot.json".into(),
        });
        self.wait = Wait::SnapshotLocal;
    }

    fn snapshot_loaded(&mut self, bytes: Option<Vec<u8>>) {
        if let Some(bytes) = bytes
            && self.update_snapshot(&bytes, true).is_ok()
        {
            self.load_role("targets".into(), "root".into());
            return;
        }
        let Some(ts) = &self.timestamp else {
            self.fail(UpdateError::Misuse {
                detail: "no trusted timestamp".into(),
            });
            return;
        };
        let meta = &ts.meta.snapshot;
        let version = self.root.meta.consistent_snapshot.then_some(meta.version);
        let url_path = paths::role_url_path("snapshot", version);
        self.out.push_back(Output::Fetch {
            url_path: url_path.clone(),
            max_length: meta.length.unwrap_or(self.config.snapshot_max_length),
        });
        self.wait = Wait::SnapshotRemote { url_path };
    }

    // --- 5.6: targets, top-level and delegated. ------------------------------------------------

    /// Loads a targets role unless it is trusted already; then goes on.
    fn load_role(&mut self, role: String, parent: String) {
        if self.targets.contains_key(&role) {
            self.role_ready(role, parent);
            return;
        }
        self.out.push_back(Output::Load {
            role_file: paths::role_file(&role),
        });
        self.wait = Wait::TargetsLocal { role, parent };
    }

    fn targets_loaded(&mut self, role: String, parent: String, bytes: Option<Vec<u8>>) {
        if let Some(bytes) = bytes
            && self.update_targets(&role, &parent, &bytes).is_ok()
        {
            self.role_ready(role, parent);
            return;
        }
        let listed = self
            .snapshot
            .as_ref()
            .and_then(|s| s.meta.role(&role).cloned());
        let Some(listed) = listed else {
            self.fail(UpdateError::NotInSnapshot { role });
            return;
        };
        let version = self.root.meta.consistent_snapshot.then_some(listed.version);
        let url_path = paths::role_url_path(&role, version);
        self.out.push_back(Output::Fetch {
            url_path: url_path.clone(),
            max_length: listed.length.unwrap_or(self.config.targets_max_length),
        });
        self.wait = Wait::TargetsRemote {
            role,
            parent,
            url_path,
        };
    }

    /// A targets role is trusted: the refresh is done, or the search goes on.
    fn role_ready(&mut self, role: String, parent: String) {
        if !self.refreshed {
            self.refreshed = true;
            match std::mem::replace(&mut self.job, Job::None) {
                Job::Find(name) => {
                    self.job = Job::Find(name.clone());
                    self.start_walk(name);
                }
                _ => self.out.push_back(Output::Refreshed),
            }
            return;
        }
        if self.examine(&role, &parent) {
            self.walk_on();
        }
    }

    // --- What is trusted. ---------------------------------------------------------------------

    /// The trusted root.
    pub fn root(&self) -> &Held<Root> {
        &self.root
    }

    /// The trusted timestamp, once refreshed.
    pub fn timestamp(&self) -> Option<&Held<Timestamp>> {
        self.timestamp.as_ref()
    }

    /// The trusted snapshot, once refreshed.
    pub fn snapshot(&self) -> Option<&Held<Snapshot>> {
        self.snapshot.as_ref()
    }

    /// A trusted targets role (`targets`, or a delegated role the search loaded).
    pub fn targets(&self, role: &str) -> Option<&Held<Targets>> {
        self.targets.get(role)
    }

    /// Whether the refresh is done.
    pub fn refreshed(&self) -> bool {
        self.refreshed
    }

    /// The trusted versions of root, timestamp, snapshot and targets (0 for none).
    pub fn versions(&self) -> [u64; 4] {
        [
            self.root.meta.common.version,
            self.timestamp.as_ref().map_or(0, |t| t.meta.common.version),
            self.snapshot.as_ref().map_or(0, |t| t.meta.common.version),
            self.targets
                .get("targets")
                .map_or(0, |t| t.meta.common.version),
        ]
    }
}

#[cfg(test)]
mod tests;
