//! The `gpio` output: a door's relay, pulsed for `pulse_ms` on each grant an output may act on
//! (`actuate`: fresh, not a late one), through the Linux GPIO character device (`chip`, `line`)
//! or, for a relay board driven by a program, through `command` run with `on` and then `off`.
//! The relay is always switched off again, also when the pulse was cut short by an error.
//!
//! With the character device it can also watch two inputs: a door contact (`door_line`,
//! active while the door is open), which makes "forced open" (opened with no pulse in the last
//! `pulse_ms` + 5 s) and "held open" (open longer than `held_open_s`) events, and a
//! request-to-exit button (`exit_line`), which pulses the relay. They are logged (journald)
//! and counted on /metrics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::event::{DeliveryError, Event, Sink};
use super::status::OutputStatus;
use crate::config::outputs::GpioOutput;

/// Switches a relay.
pub trait Relay: Send {
    fn set(&mut self, on: bool) -> Result<(), DeliveryError>;
}

/// A line of a GPIO chip, requested as an output (inactive at first).
struct ChipLine {
    request: gpiocdev::Request,
    line: u32,
}

impl Relay for ChipLine {
    fn set(&mut self, on: bool) -> Result<(), DeliveryError> {
        let value =
            if on { gpiocdev::line::Value::Active } else { gpiocdev::line::Value::Inactive };
        self.request.set_value(self.line, value).map_err(|e| {
            DeliveryError(format!(
                "setting GPIO line {} of {}: {e}",
                self.line,
                self.request.chip_path().display()
            ))
        })
    }
}

/// A relay switched by a program: `command on`, `command off`.
struct CommandRelay {
    command: Vec<String>,
    timeout: Duration,
}

impl Relay for CommandRelay {
    fn set(&mut self, on: bool) -> Result<(), DeliveryError> {
        super::exec::run(&self.command, &[if on { "on" } else { "off" }], b"", self.timeout)
    }
}

/// Pulses the relay for `length`: on, wait, off. Off is tried three times, whatever happened
/// before it: a door must not stay unlocked.
fn pulse(relay: &Mutex<Box<dyn Relay>>, length: Duration) -> Result<(), DeliveryError> {
    let mut relay = relay.lock().unwrap_or_else(|e| e.into_inner());
    let on = relay.set(true);
    if on.is_ok() {
        std::thread::sleep(length);
    }
    let mut off = relay.set(false);
    for _ in 0..2 {
        if off.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        off = relay.set(false);
    }
    if let Err(e) = &off {
        log::error!("the relay could not be switched off: {e}");
    }
    on.and(off)
}

/// The chip's path: "/dev/gpiochip0", or a name under /dev ("gpiochip0").
fn chip_path(chip: &str) -> std::path::PathBuf {
    if chip.contains('/') {
        chip.into()
    } else {
        std::path::Path::new("/dev").join(chip)
    }
}

pub struct Gpio {
    relay: Arc<Mutex<Box<dyn Relay>>>,
    pulse: Duration,
    /// When the relay was last pulsed (the door contact's "forced open" looks at it).
    pulsed: Arc<Mutex<Option<Instant>>>,
    /// Stops the input watcher when the output ends.
    stop: Arc<AtomicBool>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

impl Gpio {
    /// Requests the relay line (and the inputs) now, so a missing chip or a line another
    /// program holds stops the daemon's start with the fix.
    pub fn open(cfg: &GpioOutput, status: &Arc<OutputStatus>) -> Result<Gpio, String> {
        let pulse = Duration::from_millis(cfg.pulse_ms as u64);
        let relay: Box<dyn Relay> = match cfg.line {
            Some(line) => {
                let path = chip_path(&cfg.chip);
                let mut b = gpiocdev::Request::builder();
                b.on_chip(&path).with_consumer(format!("edgeid {}", cfg.name)).with_line(line);
                if cfg.active_low {
                    b.as_active_low();
                }
                let request = b.as_output(gpiocdev::line::Value::Inactive).request().map_err(|e| {
                    format!("output {}: cannot take GPIO line {line} of {} as the relay ({e}); check outputs.chip and outputs.line (`gpioinfo` lists them) and that no other program holds the line", cfg.name, path.display())
                })?;
                Box::new(ChipLine { request, line })
            }
            None => {
                let mut relay = CommandRelay {
                    command: cfg.command.clone(),
                    timeout: Duration::from_secs_f32(cfg.timeout_s),
                };
                // A pulse cut by a crash or a power cut may have left the board on.
                if let Err(e) = relay.set(false) {
                    log::warn!("output {}: switching the relay off at start: {e}", cfg.name);
                }
                Box::new(relay)
            }
        };
        let relay = Arc::new(Mutex::new(relay));
        let pulsed = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = match (cfg.door_line, cfg.exit_line) {
            (None, None) => None,
            (door, exit) => {
                let inputs = Inputs::request(cfg, door, exit)?;
                let watch = Watch {
                    name: cfg.name.clone(),
                    relay: relay.clone(),
                    pulse,
                    pulsed: pulsed.clone(),
                    held_open: Duration::from_secs_f32(cfg.held_open_s),
                    status: status.clone(),
                };
                let stop = stop.clone();
                Some(std::thread::spawn(move || watch.run(inputs, &stop)))
            }
        };
        Ok(Gpio { relay, pulse, pulsed, stop, watcher })
    }
}

impl Drop for Gpio {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }
}

impl Sink for Gpio {
    fn deliver(&mut self, event: &Event<'_>, _body: &[u8]) -> Result<(), DeliveryError> {
        // A denial, or a grant too old to act on: nothing to switch (still delivered).
        if !event.actuate {
            return Ok(());
        }
        *self.pulsed.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        pulse(&self.relay, self.pulse)
    }
}

/// The door contact and exit button lines, requested as inputs with edge events.
struct Inputs {
    request: gpiocdev::Request,
    door: Option<u32>,
    exit: Option<u32>,
}

impl Inputs {
    fn request(cfg: &GpioOutput, door: Option<u32>, exit: Option<u32>) -> Result<Inputs, String> {
        let path = chip_path(&cfg.chip);
        let lines: Vec<u32> = door.into_iter().chain(exit).collect();
        let mut b = gpiocdev::Request::builder();
        b.on_chip(&path)
            .with_consumer(format!("edgeid {} inputs", cfg.name))
            .with_lines(&lines)
            .as_input()
            .with_edge_detection(gpiocdev::line::EdgeDetection::BothEdges)
            .with_debounce_period(Duration::from_millis(20));
        if cfg.inputs_active_low {
            b.as_active_low();
        }
        let request = b.request().map_err(|e| {
            format!("output {}: cannot take GPIO lines {lines:?} of {} as inputs ({e}); check outputs.door_line and outputs.exit_line", cfg.name, path.display())
        })?;
        Ok(Inputs { request, door, exit })
    }

    fn active(&self, line: u32) -> bool {
        matches!(self.request.value(line), Ok(gpiocdev::line::Value::Active))
    }
}

/// What the input watcher needs.
struct Watch {
    name: String,
    relay: Arc<Mutex<Box<dyn Relay>>>,
    pulse: Duration,
    pulsed: Arc<Mutex<Option<Instant>>>,
    held_open: Duration,
    status: Arc<OutputStatus>,
}

impl Watch {
    fn run(self, inputs: Inputs, stop: &AtomicBool) {
        let mut opened: Option<Instant> = None;
        let mut held_reported = false;
        if let Some(door) = inputs.door {
            if inputs.active(door) {
                opened = Some(Instant::now());
            }
        }
        while !stop.load(Ordering::SeqCst) {
            match inputs.request.wait_edge_event(Duration::from_millis(200)) {
                Ok(true) => {
                    let Ok(event) = inputs.request.read_edge_event() else { continue };
                    let rising = event.kind == gpiocdev::line::EdgeKind::Rising;
                    if Some(event.offset) == inputs.exit && rising {
                        self.status.exit_requests.fetch_add(1, Ordering::Relaxed);
                        log::info!("output {}: request to exit; pulsing the relay", self.name);
                        *self.pulsed.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(Instant::now());
                        if let Err(e) = pulse(&self.relay, self.pulse) {
                            log::error!("output {}: request to exit: {e}", self.name);
                        }
                    } else if Some(event.offset) == inputs.door {
                        if rising {
                            opened = Some(Instant::now());
                            held_reported = false;
                            let last = *self.pulsed.lock().unwrap_or_else(|e| e.into_inner());
                            let allowed = self.pulse + Duration::from_secs(5);
                            if last.is_none_or(|t| t.elapsed() > allowed) {
                                self.status.door_forced.fetch_add(1, Ordering::Relaxed);
                                log::warn!("output {}: door forced open (no grant or exit request before it)", self.name);
                            }
                        } else {
                            opened = None;
                        }
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    log::warn!("output {}: reading the GPIO inputs: {e}", self.name);
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            if let Some(t) = opened.filter(|t| !held_reported && t.elapsed() > self.held_open) {
                held_reported = true;
                self.status.door_held.fetch_add(1, Ordering::Relaxed);
                log::warn!("output {}: door held open for over {:.0?}", self.name, t.elapsed());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relay that records what it was told and can be made to fail.
    struct Recorded {
        log: Arc<Mutex<Vec<(bool, Instant)>>>,
        fail_on: bool,
    }

    impl Relay for Recorded {
        fn set(&mut self, on: bool) -> Result<(), DeliveryError> {
            self.log.lock().unwrap().push((on, Instant::now()));
            if on && self.fail_on {
                return Err(DeliveryError("relay board unplugged".into()));
            }
            Ok(())
        }
    }

    #[test]
    fn a_pulse_is_on_for_its_length_and_always_ends_off() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let relay: Mutex<Box<dyn Relay>> =
            Mutex::new(Box::new(Recorded { log: log.clone(), fail_on: false }));
        pulse(&relay, Duration::from_millis(120)).unwrap();
        let l = log.lock().unwrap().clone();
        assert_eq!(l.iter().map(|e| e.0).collect::<Vec<_>>(), [true, false]);
        assert!(l[1].1 - l[0].1 >= Duration::from_millis(120));
        // Switching on fails: the pulse fails (retried by the output), and off is still sent.
        log.lock().unwrap().clear();
        let relay: Mutex<Box<dyn Relay>> =
            Mutex::new(Box::new(Recorded { log: log.clone(), fail_on: true }));
        assert!(pulse(&relay, Duration::from_secs(5)).is_err());
        let l = log.lock().unwrap().clone();
        assert_eq!(l.iter().map(|e| e.0).collect::<Vec<_>>(), [true, false]);
        assert!(l[1].1 - l[0].1 < Duration::from_secs(1), "no wait after a failed on");
    }
}
