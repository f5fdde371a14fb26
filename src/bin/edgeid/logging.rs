//! Log lines on stderr. Under systemd, where stderr is the journal (systemd says so with
//! `JOURNAL_STREAM`), each line starts with its syslog priority, `<3>` for an error to `<7>` for
//! debug, which journald reads (sd-daemon(3)): `journalctl -p warning -u edgeid` then finds the
//! warnings and errors, and the journal's own timestamp replaces env_logger's. Elsewhere (a
//! terminal, a file, a pipe) the lines are env_logger's usual ones.

use std::io::Write;
use std::sync::OnceLock;

/// Sets up the logger: edgeid's records from `level` (an env_logger filter; `RUST_LOG`
/// overrides it), written with priorities when stderr is the journal.
pub fn init(level: &str) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level));
    if to_journal() {
        builder.format(|buf, record| {
            let priority = match record.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            writeln!(buf, "<{priority}>{}: {}", record.target(), record.args())
        });
    }
    builder.init();
}

/// The prefix of a line written to stderr at error priority ("error: …" lines): `<3>` when
/// stderr is the journal, else nothing.
pub fn error_prefix() -> &'static str {
    if to_journal() {
        "<3>"
    } else {
        ""
    }
}

/// Whether stderr is connected to the journal: `JOURNAL_STREAM` holds the device and inode of
/// the stream systemd connected (`DEV:INODE`), and stderr is still that stream (a program that
/// redirects its stderr elsewhere keeps the variable, so it is compared, as systemd.exec(5) asks).
fn to_journal() -> bool {
    static TO_JOURNAL: OnceLock<bool> = OnceLock::new();
    *TO_JOURNAL.get_or_init(|| {
        let Some((dev, ino)) = std::env::var("JOURNAL_STREAM").ok().and_then(|v| {
            v.split_once(':')
                .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        }) else {
            return false;
        };
        // SAFETY: fstat writes only into the zeroed struct it is given; fd 2 may be closed,
        // which it reports as an error.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        unsafe {
            libc::fstat(2, &mut st) == 0 && st.st_dev as u64 == dev && st.st_ino as u64 == ino
        }
    })
}
