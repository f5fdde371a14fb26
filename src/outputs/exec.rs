//! The `exec` output: a program run once per event, the event as one JSON line on its
//! standard input. Exit status 0 is delivered; anything else, or a program still running at
//! the timeout (killed), is a failure and the event is retried.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::event::{DeliveryError, Event, Sink};

pub struct Exec {
    pub command: Vec<String>,
    pub timeout: Duration,
}

impl Sink for Exec {
    fn deliver(&mut self, _event: &Event<'_>, body: &[u8]) -> Result<(), DeliveryError> {
        run(&self.command, &[], body, self.timeout)
    }
}

/// Runs `command` with `extra` arguments after its own, `input` and a newline on its standard
/// input; Ok on exit status 0 within `timeout` (else it is killed).
pub fn run(
    command: &[String],
    extra: &[&str],
    input: &[u8],
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let program = &command[0];
    let fail = |what: String| DeliveryError(format!("{program}: {what}"));
    let mut child = Command::new(program)
        .args(&command[1..])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot start it ({e}); check outputs.command")))?;
    // A program that exits without reading its input closes the pipe: its exit status
    // says whether it took the event, not the write.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input).and_then(|()| stdin.write_all(b"\n"));
    }
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("still running after {timeout:.1?}; killed")));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(fail(format!("cannot wait for it: {e}"))),
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        use std::io::Read;
        let _ = err.by_ref().take(4096).read_to_string(&mut stderr);
    }
    let said = stderr.lines().last().map(|l| format!(": {l}")).unwrap_or_default();
    Err(fail(format!("exited with {status}{said}")))
}
