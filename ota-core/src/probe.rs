//! Health probes: what to run after a swap, when, and what the results mean.
//!
//! A [`ProbeSpec`] is one of the push-a-model-bundle guide's three kinds: an allowlisted executable (exit 0 is
//! healthy), an HTTP GET (a 2xx within the timeout; loopback only unless explicitly allowed),
//! or a readiness file that must exist and be newer than the swap. A [`ProbePolicy`] says
//! when to probe and how to judge; [`decide`] is the pure decision, and the device agent
//! drives it. The runners that really execute probes live in the host crate (`ota-host`'s
//! `probe` module): the core spawns no process and opens no socket.

use serde::{Deserialize, Serialize};

use crate::status::Status;
use crate::time::UnixMs;

/// A health probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum ProbeSpec {
    /// Run an executable; exit status 0 is healthy.
    Exec {
        /// Its absolute path, which must be on the agent's allowlist.
        path: String,
        /// Its arguments.
        #[serde(default)]
        args: Vec<String>,
        /// How long it may run before it is killed and counted unhealthy.
        timeout_ms: u64,
    },
    /// `GET url`; a 2xx status within the timeout is healthy.
    Http {
        /// An `http://` URL; its host must be loopback unless `allow_remote` is set.
        url: String,
        /// How long to wait for the whole response head.
        timeout_ms: u64,
        /// Allow a host that is not loopback.
        #[serde(default)]
        allow_remote: bool,
    },
    /// A readiness file the application writes: healthy when it exists and was modified
    /// after the swap.
    File {
        /// Its absolute path.
        path: String,
    },
}

/// A probe that may not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// An executable probe's path is not absolute or not on the allowlist.
    #[error("probe executable {path:?} is not on the allowlist")]
    NotAllowed {
        /// The path.
        path: String,
    },
    /// An HTTP probe's URL is malformed or its host is not loopback.
    #[error("probe url {url:?} is refused: {why}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        why: &'static str,
    },
    /// The assignment's probe (unsigned metadata) asks for more than the device's own
    /// policy grants: arguments, a remote host, or a readiness file. Those come only from the
    /// device's configuration.
    #[error("the assignment's probe may not {why}: only the device's own policy may")]
    Unsigned {
        /// What it asked for.
        why: &'static str,
    },
    /// An executable probe names an interpreter or a launcher (a shell, `env`, `python`,
    /// `busybox`...): its arguments would be any command, so no allowlist admits it.
    #[error(
        "probe executable {path:?} is an interpreter or launcher ({name}): it runs whatever its arguments say, so no allowlist admits it"
    )]
    Interpreter {
        /// The path.
        path: String,
        /// The program it names, without a version suffix.
        name: String,
    },
    /// A timeout of zero, or a path that is not absolute.
    #[error("invalid probe: {why}")]
    Invalid {
        /// Why.
        why: &'static str,
    },
}

impl ProbeError {
    /// The stable status code of this error.
    pub fn status(&self) -> Status {
        Status::ProbeRefused
    }
}

/// An `http://host:port/path` URL split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// The host as written (`127.0.0.1`, `localhost`, `[::1]`).
    pub host: String,
    /// The port (80 when absent).
    pub port: u16,
    /// The path and query (`/healthz`).
    pub path: String,
}

/// Splits an `http://` URL; only plain HTTP is supported.
pub fn parse_http_url(url: &str) -> Result<HttpTarget, ProbeError> {
    let bad = |why| ProbeError::BadUrl {
        url: url.to_string(),
        why,
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty()
        || authority.contains('@')
        || path.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad("malformed URL"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("malformed IPv6 host"))?;
        (format!("[{h}]"), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let port = match port {
        None => 80,
        Some(p) => p.parse().map_err(|_| bad("malformed port"))?,
    };
    Ok(HttpTarget {
        host,
        port,
        path: path.to_string(),
    })
}

/// Whether `host` is loopback: `localhost`, 127.0.0.0/8 or `[::1]`.
pub fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Programs that run their arguments as code or as another command: shells, `env` and other
/// launchers, script interpreters, multi-call binaries. Compared with the file name, less any
/// version suffix (`python3.11` is `python`).
pub const INTERPRETERS: &[&str] = &[
    "sh",
    "ash",
    "dash",
    "bash",
    "rbash",
    "zsh",
    "ksh",
    "mksh",
    "pdksh",
    "csh",
    "tcsh",
    "fish",
    "busybox",
    "toybox",
    "env",
    "xargs",
    "nice",
    "nohup",
    "timeout",
    "stdbuf",
    "setsid",
    "sudo",
    "su",
    "doas",
    "runuser",
    "chroot",
    "unshare",
    "nsenter",
    "flock",
    "watch",
    "script",
    "systemd-run",
    "ssh",
    "find",
    "python",
    "pypy",
    "perl",
    "ruby",
    "irb",
    "node",
    "nodejs",
    "deno",
    "bun",
    "lua",
    "luajit",
    "php",
    "tclsh",
    "wish",
    "expect",
    "awk",
    "gawk",
    "mawk",
    "nawk",
    "sed",
    "pwsh",
    "gdb",
    "strace",
    "ltrace",
    "vi",
    "vim",
    "emacs",
];

/// The interpreter or launcher `path` names (see [`INTERPRETERS`]), if it names one.
pub fn interpreter(path: &str) -> Option<&'static str> {
    let file = path.rsplit('/').next().unwrap_or(path);
    let bare = file.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    let bare = bare.strip_suffix('-').unwrap_or(bare);
    INTERPRETERS
        .iter()
        .find(|i| i.eq_ignore_ascii_case(bare) || i.eq_ignore_ascii_case(file))
        .copied()
}

impl ProbeSpec {
    /// Checks a probe that came from unsigned metadata (an assignment): it may only pick an
    /// allowlisted executable without arguments (an argument can turn `/usr/bin/env` or a
    /// shell into any command), or a loopback URL. Arguments, `allow_remote` and readiness
    /// files (any existing file passes, `/proc/self/stat` always) are the device's policy.
    pub fn check_unsigned(&self, allowlist: &[String]) -> Result<(), ProbeError> {
        match self {
            ProbeSpec::Exec { args, .. } if !args.is_empty() => Err(ProbeError::Unsigned {
                why: "pass arguments to an executable",
            }),
            ProbeSpec::Http {
                allow_remote: true, ..
            } => Err(ProbeError::Unsigned {
                why: "set allow_remote",
            }),
            ProbeSpec::File { .. } => Err(ProbeError::Unsigned {
                why: "name a readiness file",
            }),
            _ => self.check(allowlist),
        }
    }

    /// The probe with its timeout lowered to `max_ms` when it is longer (a readiness file has
    /// none).
    #[must_use]
    pub fn with_timeout_at_most(mut self, max_ms: u64) -> Self {
        match &mut self {
            ProbeSpec::Exec { timeout_ms, .. } | ProbeSpec::Http { timeout_ms, .. } => {
                *timeout_ms = (*timeout_ms).min(max_ms);
            }
            ProbeSpec::File { .. } => {}
        }
        self
    }

    /// Checks that the probe may run on this device: [`Self::check_form`], and an executable
    /// must be on `allowlist`.
    pub fn check(&self, allowlist: &[String]) -> Result<(), ProbeError> {
        self.check_form()?;
        match self {
            ProbeSpec::Exec { path, .. } if !allowlist.iter().any(|a| a == path) => {
                Err(ProbeError::NotAllowed { path: path.clone() })
            }
            _ => Ok(()),
        }
    }

    /// Checks what holds on any device (a signed package's probe is checked so when it is
    /// parsed): an executable is absolute and no interpreter or launcher (see
    /// [`interpreter`]); an HTTP host is loopback unless `allow_remote`; a readiness file is
    /// absolute; a timeout is not zero.
    pub fn check_form(&self) -> Result<(), ProbeError> {
        match self {
            ProbeSpec::Exec {
                path, timeout_ms, ..
            } => {
                if *timeout_ms == 0 {
                    return Err(ProbeError::Invalid {
                        why: "a timeout of 0",
                    });
                }
                if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
                    return Err(ProbeError::NotAllowed { path: path.clone() });
                }
                if let Some(name) = interpreter(path) {
                    return Err(ProbeError::Interpreter {
                        path: path.clone(),
                        name: name.to_string(),
                    });
                }
                Ok(())
            }
            ProbeSpec::Http {
                url,
                timeout_ms,
                allow_remote,
            } => {
                if *timeout_ms == 0 {
                    return Err(ProbeError::Invalid {
                        why: "a timeout of 0",
                    });
                }
                let t = parse_http_url(url)?;
                if !allow_remote && !is_loopback(&t.host) {
                    return Err(ProbeError::BadUrl {
                        url: url.clone(),
                        why: "the host is not loopback (set allow_remote to allow it)",
                    });
                }
                Ok(())
            }
            ProbeSpec::File { path } => {
                if path.starts_with('/') {
                    Ok(())
                } else {
                    Err(ProbeError::Invalid {
                        why: "a readiness file path must be absolute",
                    })
                }
            }
        }
    }
}

/// When to probe and how to judge. All times in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbePolicy {
    /// Wait this long after the swap took effect (the new version runs: after the reboot, for
    /// a switch that needs one) before the first probe. Default 2 000.
    #[serde(default = "d_initial")]
    pub initial_delay_ms: u64,
    /// Wait this long between probes. Default 2 000.
    #[serde(default = "d_interval")]
    pub interval_ms: u64,
    /// Healthy after this many consecutive successes. Default 3.
    #[serde(default = "d_successes")]
    pub successes_needed: u32,
    /// Unhealthy after more failures than this. Default 0.
    #[serde(default)]
    pub failures_tolerated: u32,
    /// Unhealthy if not healthy this long after the swap took effect. Default 120 000.
    #[serde(default = "d_deadline")]
    pub deadline_ms: u64,
}

fn d_initial() -> u64 {
    2_000
}
fn d_interval() -> u64 {
    2_000
}
fn d_successes() -> u32 {
    3
}
fn d_deadline() -> u64 {
    120_000
}

impl Default for ProbePolicy {
    fn default() -> Self {
        ProbePolicy {
            initial_delay_ms: d_initial(),
            interval_ms: d_interval(),
            successes_needed: d_successes(),
            failures_tolerated: 0,
            deadline_ms: d_deadline(),
        }
    }
}

/// Where probing stands after a swap (persisted with the agent's record).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeProgress {
    /// When the swap happened (asked for: a readiness file written after it counts).
    pub swapped_at: UnixMs,
    /// When probing started: the later of `swapped_at` and when the agent heard the swap had
    /// taken effect (the new version runs, after a reboot perhaps). The initial delay and the
    /// deadline count from here. `None` (a record written before it was kept): from
    /// `swapped_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probing_since: Option<UnixMs>,
    /// Consecutive successes so far.
    pub successes: u32,
    /// Failures so far (a restart while probing counts as one).
    pub failures: u32,
    /// When the last probe was started, if any.
    pub last_run_at: Option<UnixMs>,
    /// The last failure's detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

/// What the policy says now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Nothing to do before this instant.
    WaitUntil(UnixMs),
    /// Run the probe now.
    Run,
    /// Enough consecutive successes: commit.
    Healthy,
    /// Too many failures, or the deadline passed: roll back.
    Unhealthy {
        /// Why.
        reason: String,
    },
}

/// The result of one probe run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeResult {
    /// Whether the probe found the device healthy.
    pub healthy: bool,
    /// What it saw (`exit status 1`, `HTTP 503`, `timed out after 2000 ms`).
    #[serde(default)]
    pub detail: String,
}

impl ProbeProgress {
    /// When probing started: the initial delay and the deadline count from here.
    pub fn started(&self) -> UnixMs {
        self.probing_since.unwrap_or(self.swapped_at)
    }

    /// Records a probe result.
    pub fn record(&mut self, result: &ProbeResult) {
        if result.healthy {
            self.successes += 1;
        } else {
            self.successes = 0;
            self.failures += 1;
            self.last_failure = Some(result.detail.clone());
        }
    }
}

/// Whether the policy has a verdict already, whatever the time.
fn verdict(policy: &ProbePolicy, p: &ProbeProgress) -> Option<Decision> {
    if p.failures > policy.failures_tolerated {
        let last = p.last_failure.as_deref().unwrap_or("probe failed");
        return Some(Decision::Unhealthy {
            reason: format!(
                "health probe failed {} time(s), {} tolerated: {last}",
                p.failures, policy.failures_tolerated
            ),
        });
    }
    if p.successes >= policy.successes_needed.max(1) {
        return Some(Decision::Healthy);
    }
    None
}

/// The instant from which [`decide`] stops saying [`Decision::WaitUntil`]: the next probe or
/// the deadline, whichever comes first; when there is a verdict already, the instant it was
/// reached (the last probe, or the swap).
pub fn due(policy: &ProbePolicy, p: &ProbeProgress) -> UnixMs {
    if verdict(policy, p).is_some() {
        return p.last_run_at.unwrap_or(p.started());
    }
    let deadline = p.started() + policy.deadline_ms;
    let next = match p.last_run_at {
        None => p.started() + policy.initial_delay_ms,
        Some(t) => t + policy.interval_ms,
    };
    next.min(deadline)
}

/// The pure decision: given the policy, the progress and the time, what to do.
pub fn decide(policy: &ProbePolicy, p: &ProbeProgress, now: UnixMs) -> Decision {
    if let Some(v) = verdict(policy, p) {
        return v;
    }
    let deadline = p.started() + policy.deadline_ms;
    if now >= deadline {
        return Decision::Unhealthy {
            reason: format!(
                "not healthy within {} ms of the new version starting",
                policy.deadline_ms
            ),
        };
    }
    let at = due(policy, p);
    if now >= at {
        Decision::Run
    } else {
        Decision::WaitUntil(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ProbePolicy {
        ProbePolicy {
            initial_delay_ms: 1_000,
            interval_ms: 500,
            successes_needed: 2,
            failures_tolerated: 1,
            deadline_ms: 10_000,
        }
    }

    fn ok(healthy: bool) -> ProbeResult {
        ProbeResult {
            healthy,
            detail: if healthy { "ok" } else { "exit status 1" }.into(),
        }
    }

    #[test]
    fn the_decision_follows_the_policy() {
        let p = policy();
        let mut s = ProbeProgress {
            swapped_at: UnixMs(100_000),
            ..Default::default()
        };
        assert_eq!(
            decide(&p, &s, UnixMs(100_500)),
            Decision::WaitUntil(UnixMs(101_000))
        );
        assert_eq!(decide(&p, &s, UnixMs(101_000)), Decision::Run);
        s.last_run_at = Some(UnixMs(101_000));
        s.record(&ok(false));
        assert_eq!(
            decide(&p, &s, UnixMs(101_200)),
            Decision::WaitUntil(UnixMs(101_500))
        );
        s.last_run_at = Some(UnixMs(101_500));
        s.record(&ok(true));
        assert_eq!(decide(&p, &s, UnixMs(102_000)), Decision::Run);
        s.record(&ok(true));
        assert_eq!(decide(&p, &s, UnixMs(102_000)), Decision::Healthy);
        // A second failure is one more than tolerated.
        let mut s = ProbeProgress {
            swapped_at: UnixMs(0),
            ..Default::default()
        };
        s.record(&ok(false));
        s.record(&ok(true));
        s.record(&ok(false));
        assert!(
            matches!(decide(&p, &s, UnixMs(1)), Decision::Unhealthy { reason } if reason.contains("2 time(s), 1 tolerated"))
        );
        // The deadline.
        let s = ProbeProgress {
            swapped_at: UnixMs(0),
            successes: 1,
            ..Default::default()
        };
        assert!(
            matches!(decide(&p, &s, UnixMs(10_000)), Decision::Unhealthy { reason } if reason.contains("within 10000 ms"))
        );
    }

    #[test]
    fn due_is_the_instant_the_decision_stops_waiting() {
        let p = policy();
        let mut s = ProbeProgress {
            swapped_at: UnixMs(100_000),
            ..Default::default()
        };
        for last_run in [None, Some(UnixMs(101_000)), Some(UnixMs(109_800))] {
            s.last_run_at = last_run;
            let at = due(&p, &s);
            assert!(
                matches!(decide(&p, &s, UnixMs(at.get() - 1)), Decision::WaitUntil(t) if t == at)
            );
            assert!(
                !matches!(decide(&p, &s, at), Decision::WaitUntil(_)),
                "{at}"
            );
        }
        // The last run plus the interval is past the deadline: the deadline is due.
        assert_eq!(due(&p, &s), UnixMs(110_000));
        // A verdict is due the instant it was reached, never "0".
        s.successes = 2;
        assert_eq!(due(&p, &s), UnixMs(109_800));
        assert_eq!(decide(&p, &s, UnixMs(109_800)), Decision::Healthy);
    }

    #[test]
    fn interpreters_and_launchers_are_never_allowed_whatever_the_allowlist() {
        for (path, name) in [
            ("/usr/bin/env", "env"),
            ("/bin/sh", "sh"),
            ("/usr/bin/python3", "python"),
            ("/usr/bin/python3.11", "python"),
            ("/usr/bin/perl5.36.0", "perl"),
            ("/bin/busybox", "busybox"),
            ("/usr/local/bin/BASH", "bash"),
        ] {
            assert_eq!(interpreter(path), Some(name), "{path}");
            let spec = ProbeSpec::Exec {
                path: path.into(),
                args: vec!["sh".into(), "-c".into(), "reboot".into()],
                timeout_ms: 1000,
            };
            let e = spec.check(&[path.to_string()]).unwrap_err();
            assert!(
                matches!(&e, ProbeError::Interpreter { .. }),
                "{path}: {e:?}"
            );
        }
        for path in ["/usr/bin/healthcheck", "/bin/true", "/opt/app/env-check"] {
            assert_eq!(interpreter(path), None, "{path}");
        }
    }

    #[test]
    fn specs_are_checked_against_the_allowlist_and_loopback() {
        let allow = vec!["/usr/bin/healthcheck".to_string()];
        let exec = |p: &str| ProbeSpec::Exec {
            path: p.into(),
            args: vec![],
            timeout_ms: 1000,
        };
        assert!(exec("/usr/bin/healthcheck").check(&allow).is_ok());
        for path in [
            "/usr/bin/other",
            "healthcheck",
            "/usr/bin/../bin/healthcheck",
        ] {
            assert_eq!(
                exec(path).check(&allow),
                Err(ProbeError::NotAllowed { path: path.into() })
            );
        }
        let http = |u: &str, remote| ProbeSpec::Http {
            url: u.into(),
            timeout_ms: 1000,
            allow_remote: remote,
        };
        for ok in [
            "http://127.0.0.1:8080/healthz",
            "http://localhost/",
            "http://[::1]:9/x",
            "http://127.1.2.3",
        ] {
            assert!(http(ok, false).check(&allow).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1/healthz",
            "http://example.com/",
            "https://127.0.0.1/",
            "http://127.0.0.1:99999/",
            "http://user@127.0.0.1/",
        ] {
            let e = http(bad, false).check(&allow).unwrap_err();
            assert!(
                matches!(&e, ProbeError::BadUrl { url, .. } if url == bad),
                "{bad}: {e:?}"
            );
        }
        assert!(http("http://10.0.0.1/healthz", true).check(&allow).is_ok());
        assert_eq!(
            ProbeSpec::File {
                path: "ready".into()
            }
            .check(&allow),
            Err(ProbeError::Invalid {
                why: "a readiness file path must be absolute"
            })
        );
        let t = parse_http_url("http://127.0.0.1:8080/healthz?full=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 8080, "/healthz?full=1")
        );
    }
}
