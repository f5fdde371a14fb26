//! Signals of the daemon: SIGINT and SIGTERM stop it (it finishes the queued frames, decides
//! the open tracks and exits 0), SIGHUP asks it to re-read the config's thresholds and the
//! gallery.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;

use edgeid::daemon::Control;

/// For the one-shot commands: a closed stdout (`edgeid journal tail | head -1`) ends the
/// process quietly, as it ends `cat`, instead of a panic with a backtrace. Rust ignores SIGPIPE
/// so that a write fails instead; the daemon keeps that (a client that hangs up on its HTTP
/// endpoint must not stop it), so this is not called for `edgeid run`.
pub fn quiet_on_closed_stdout() {
    // SAFETY: restores the default disposition of one signal before any thread is started;
    // no handler runs Rust code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// A daemon control wired to the process's signals.
pub fn control() -> anyhow::Result<Control> {
    let control = Control::default();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        for flag in [&control.stop, &control.terminate] {
            signal_hook::flag::register(signal, flag.clone())
                .context("installing signal handlers")?;
        }
    }
    let reload = control.reload.clone();
    // signal-hook sets a flag; this thread turns each SIGHUP into a reload request.
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .context("installing signal handlers")?;
    let stop = control.stop.clone();
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            if hup.swap(false, Ordering::SeqCst) {
                reload.fetch_add(1, Ordering::SeqCst);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    });
    Ok(control)
}
