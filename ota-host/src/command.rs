//! A child process run with a deadline: the health probe's executable, and the agent's slot
//! commands (`fw_setenv`, `fw_printenv`, `nvbootctrl`, a script). The child runs in a process
//! group of its own, killed whole at the timeout, so a helper it forked (a `curl`, a `sleep`)
//! does not outlive it; what it prints is kept up to a cap, the rest read and dropped, so a
//! chatty child never blocks on a full pipe and never fills the caller's memory.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How a child ended.
#[derive(Debug)]
pub struct Ran {
    /// Its exit status; `None` when it was killed at the timeout.
    pub status: Option<ExitStatus>,
    /// The first `cap` bytes of its standard output.
    pub stdout: Vec<u8>,
    /// The first `cap` bytes of its standard error.
    pub stderr: Vec<u8>,
}

/// Runs `command` (its standard input empty) for at most `timeout`, keeping the first `cap`
/// bytes of each of its outputs (`cap` 0: they go to `/dev/null`). At the timeout, the child's
/// whole process group is killed and reaped, and [`Ran::status`] is `None`. A child that
/// exited but left a background process holding its output open is not waited for past the
/// timeout: its status comes back with the output read by then.
pub fn run(mut command: Command, timeout: Duration, cap: usize) -> io::Result<Ran> {
    let out = || {
        if cap == 0 {
            Stdio::null()
        } else {
            Stdio::piped()
        }
    };
    command
        .stdin(Stdio::null())
        .stdout(out())
        .stderr(out())
        .process_group(0);
    // A timeout past what an instant holds waits as long as one can.
    let start = Instant::now();
    let deadline = start
        .checked_add(timeout)
        .unwrap_or_else(|| start + Duration::from_secs(100 * 365 * 24 * 3600));
    let mut child = command.spawn()?;
    let (done_tx, done) = mpsc::channel();
    let stdout = Captured::start(child.stdout.take(), cap, &done_tx);
    let stderr = Captured::start(child.stderr.take(), cap, &done_tx);
    drop(done_tx);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                kill_group(&mut child);
                return Err(e);
            }
        }
    };
    // The outputs close when the child (and anything it left behind) exits: waited for
    // until the deadline, or briefly once the killed group is gone.
    let until = match status {
        Some(_) => deadline,
        None => {
            kill_group(&mut child);
            Instant::now() + Duration::from_secs(1)
        }
    };
    while done
        .recv_timeout(until.saturating_duration_since(Instant::now()))
        .is_ok()
    {}
    Ok(Ran {
        status,
        stdout: stdout.take(),
        stderr: stderr.take(),
    })
}

/// Kills the child's process group (the child leads it) and reaps the child.
fn kill_group(child: &mut Child) {
    let pid = rustix::process::Pid::from_child(child);
    if rustix::process::kill_process_group(pid, rustix::process::Signal::KILL).is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// One output of the child, read to its end on a thread of its own: the first `cap` bytes
/// kept, the rest dropped.
struct Captured(Option<Arc<Mutex<Vec<u8>>>>);

impl Captured {
    /// Starts reading `r` (none: nothing to read); `done` hears when it ends.
    fn start(r: Option<impl Read + Send + 'static>, cap: usize, done: &mpsc::Sender<()>) -> Self {
        let Some(mut r) = r else {
            return Captured(None);
        };
        let kept = Arc::new(Mutex::new(Vec::new()));
        let (into, done) = (Arc::clone(&kept), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut kept = into.lock().unwrap_or_else(|e| e.into_inner());
                        let room = cap.saturating_sub(kept.len()).min(n);
                        kept.extend_from_slice(&buf[..room]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = done.send(());
        });
        Captured(Some(kept))
    }

    /// What was read so far.
    fn take(&self) -> Vec<u8> {
        self.0.as_ref().map_or_else(Vec::new, |k| {
            std::mem::take(&mut *k.lock().unwrap_or_else(|e| e.into_inner()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn output_is_kept_up_to_the_cap_and_the_status_returned() {
        let ran = run(
            sh("head -c 100000 /dev/zero; echo oops >&2; exit 3"),
            Duration::from_secs(20),
            1000,
        )
        .unwrap();
        assert_eq!(ran.status.and_then(|s| s.code()), Some(3));
        assert_eq!(ran.stdout.len(), 1000);
        assert_eq!(ran.stderr, b"oops\n");
    }

    #[test]
    fn at_the_timeout_the_child_and_what_it_forked_are_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        // The child starts a helper in the background, notes its pid, and hangs.
        let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let ran = run(sh(&script), Duration::from_secs(3), 0).unwrap();
        assert!(ran.status.is_none());
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .expect("the child noted its helper's pid within 3 s")
            .trim()
            .parse()
            .unwrap();
        // The helper is gone (a zombie until init reaps it, at most).
        let gone = (0..200).any(|_| {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let dead = state.is_empty() || state.split(' ').nth(2) == Some("Z");
            if !dead {
                std::thread::sleep(Duration::from_millis(10));
            }
            dead
        });
        assert!(gone, "the forked helper {pid} outlived the timeout");
    }

    #[test]
    fn a_child_that_left_a_helper_holding_its_output_gives_its_status_and_output() {
        // The helper outlives the 2 s timeout; the child exits at once.
        let ran = run(
            sh("echo started; sleep 6 & exit 4"),
            Duration::from_secs(2),
            1000,
        )
        .unwrap();
        assert_eq!(ran.status.and_then(|s| s.code()), Some(4), "{ran:?}");
        assert_eq!(ran.stdout, b"started\n");
    }
}
