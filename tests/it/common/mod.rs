//! Shared set-up for the integration tests: the repository's own models, config and photos.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use edgeid::capture::{load_image, Frame};
use edgeid::config::Config;
use edgeid::decide::{Decision, Outcome};
use edgeid::pipeline::Pipeline;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn data(name: &str) -> PathBuf {
    root().join("tests/data").join(name)
}

pub fn config() -> Config {
    Config::load(&root().join("configs/default.toml")).expect("default config loads")
}

/// The previous default (MTCNN and MobileFace-256), for tests pinned on those models.
pub fn legacy_config() -> Config {
    Config::load(&root().join("configs/mtcnn-mobileface.toml")).expect("legacy config loads")
}

/// The MTCNN section of a config that runs MTCNN.
pub fn mtcnn(cfg: &Config) -> edgeid::config::MtcnnConfig {
    match &cfg.detector {
        edgeid::config::DetectorConfig::Mtcnn(c) => c.clone(),
        other => panic!("not an MTCNN config: {other:?}"),
    }
}

pub fn frame(name: &str) -> Frame {
    load_image(&data(name)).expect("sample photo decodes")
}

/// One pipeline per test binary: loading and planning the models is the slow part.
pub fn pipeline() -> std::sync::MutexGuard<'static, Pipeline> {
    static P: OnceLock<Mutex<Pipeline>> = OnceLock::new();
    P.get_or_init(|| Mutex::new(Pipeline::load(&config()).expect("bundled models load")))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// One hand-labelled face of the bundled photos (tests/data/labels.csv).
#[derive(Debug, Clone)]
pub struct Label {
    pub photo: String,
    pub bbox: [f32; 4],
    pub identity: String,
}

/// The hand labels of the bundled photos: who is who, judged by eye.
pub fn labels() -> Vec<Label> {
    let text = std::fs::read_to_string(data("labels.csv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("photo,") && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let n = |i: usize| f[i].parse::<f32>().unwrap();
            Label { photo: f[0].into(), bbox: [n(1), n(2), n(3), n(4)], identity: f[5].into() }
        })
        .collect()
}

/// The hand-labelled development set built by tools/labelled.py (var/labelled).
pub fn labelled_set() -> PathBuf {
    let dir = root().join("var/labelled");
    assert!(
        dir.join("obama").is_dir(),
        "{} is missing: build it with `python3 tools/labelled.py` (needs Pillow and PyPI)",
        dir.display()
    );
    dir
}

/// One pipeline of the previous default (MTCNN, MobileFace-256) per test binary.
pub fn legacy_pipeline() -> std::sync::MutexGuard<'static, Pipeline> {
    static P: OnceLock<Mutex<Pipeline>> = OnceLock::new();
    P.get_or_init(|| Mutex::new(Pipeline::load(&legacy_config()).expect("bundled models load")))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

pub const SAMPLES: [&str; 6] =
    ["sample1.jpg", "sample2.jpg", "sample3.jpg", "sample4.jpg", "sample5.jpg", "sample6.jpg"];

/// A daemon config in a temporary folder: the repo's models, a replay source (`fps`, `loop`),
/// its own gallery and journal, and `http` as the metrics address ("" for none).
pub struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    pub fn new(replay: &str, fps: f32, looping: bool, http: &str) -> Setup {
        Setup::from("default.toml", replay, fps, looping, http)
    }
    /// The same from the previous default (MTCNN and MobileFace-256), for tests pinned on it.
    pub fn legacy(replay: &str, fps: f32, looping: bool, http: &str) -> Setup {
        Setup::from("mtcnn-mobileface.toml", replay, fps, looping, http)
    }
    fn from(config: &str, replay: &str, fps: f32, looping: bool, http: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let models = root().join("models");
        let text = std::fs::read_to_string(root().join("configs").join(config))
            .unwrap()
            .replace("../models/", &format!("{}/", models.display()))
            .replace("path = \"../tests/data/replay.txt\"", &format!("path = {:?}", replay))
            .replace("fps = 0\n", &format!("fps = {fps}\n"))
            .replace("loop = false", &format!("loop = {looping}"))
            .replace("http = \"127.0.0.1:9464\"", &format!("http = {http:?}"))
            .replace("../var/", "");
        std::fs::write(dir.path().join("edgeid.toml"), text).unwrap();
        Setup { dir }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("edgeid.toml")
    }
    /// The folder the config, gallery and journal are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    /// Rewrites the config's text.
    pub fn edit(&self, f: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(self.config()).unwrap();
        std::fs::write(self.config(), f(text)).unwrap();
    }
    /// The config with `sources` (TOML) in place of its replay source.
    pub fn with_sources(&self, sources: &str) {
        self.edit(|text| {
            let start = text.find("[[sources]]").expect("a [[sources]] table");
            let end = start + text[start..].find("\nloop = ").expect("the replay's loop");
            let end = end + 1 + text[end + 1..].find('\n').unwrap() + 1;
            format!("{}{sources}{}", &text[..start], &text[end..])
        });
    }
    /// The config without `policy.require_live`, for tests of what a grant sets off (the API,
    /// outputs, the fleet, latency): the bundled photos are web photos, not captures of people
    /// at a camera, and the PAD heads deny some of them as attacks (kiosk640.jpg, her face at
    /// the frame's edge against a dark door, scores 0.008). PAD still runs and its scores are
    /// journaled; it is tested on real captures and attacks in tests/it/pad.rs.
    pub fn without_live_requirement(self) -> Setup {
        let cfg = std::fs::read_to_string(self.config()).unwrap();
        assert!(cfg.contains("require_live = true\n"), "the config requires liveness");
        std::fs::write(
            self.config(),
            cfg.replace("require_live = true\n", "require_live = false\n"),
        )
        .unwrap();
        self
    }
    pub fn journal(&self) -> PathBuf {
        self.dir.path().join("journal.db")
    }
    pub fn gallery(&self) -> PathBuf {
        self.dir.path().join("gallery.db")
    }
    pub fn enrol(&self, name: &str, photo: &str) {
        let cfg = edgeid::config::Config::load(&self.config()).unwrap();
        edgeid::app::enroll(&cfg, &self.gallery(), name, &[data(photo)]).unwrap();
    }
    /// A long-running `edgeid run` (with `args` after it): its log goes to a file (a pipe
    /// nobody reads would fill and stop it), and it is killed when the test ends, also when
    /// the test fails (a looping replay left running slowed every later test).
    pub fn daemon(&self, args: &[&str]) -> Daemon {
        self.daemon_with_env(args, &[])
    }
    /// The same with environment variables set (systemd's NOTIFY_SOCKET, WATCHDOG_USEC…);
    /// `JOURNAL_STREAM` given as "stderr" becomes the log file's `DEV:INODE`, as systemd sets it
    /// for a service whose stderr is the journal.
    pub fn daemon_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        self.start(None, args, env)
    }
    /// The same started inside a control group (a folder of the cgroup file system): a shell
    /// moves itself there and becomes the daemon, so every task the daemon makes counts.
    pub fn daemon_in_cgroup(&self, cgroup: &Path, args: &[&str]) -> Daemon {
        self.start(Some(cgroup), args, &[])
    }
    fn start(&self, cgroup: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        use std::os::unix::fs::MetadataExt;
        let log = self.dir.path().join(format!("daemon-{}.log", uniq()));
        let stderr = std::fs::File::create(&log).unwrap();
        let meta = stderr.metadata().unwrap();
        let stream = format!("{}:{}", meta.dev(), meta.ino());
        let env = env.iter().map(|&(k, v)| match (k, v) {
            ("JOURNAL_STREAM", "stderr") => (k, stream.as_str()),
            kv => kv,
        });
        let mut command = match cgroup {
            None => Command::new(env!("CARGO_BIN_EXE_edgeid")),
            Some(cgroup) => {
                let mut sh = Command::new("sh");
                sh.args(["-c", r#"echo $$ > "$1/cgroup.procs" && shift && exec "$@""#, "sh"])
                    .arg(cgroup)
                    .arg(env!("CARGO_BIN_EXE_edgeid"));
                sh
            }
        };
        command
            .arg("--config")
            .arg(self.config())
            .arg("run")
            .args(args)
            .envs(env)
            .stdout(Stdio::null())
            .stderr(stderr);
        // Killed also when the test process is (a timeout, ^C), where no drop runs.
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().unwrap();
        Daemon { child, log }
    }
    pub fn spawn(&self, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_edgeid"))
            .arg("--config")
            .arg(self.config())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// Crops of the named photos into `face_dir` (each detected face, a square 1.2× its box) and
/// `background_dir` (160 px squares on a 200 px grid touching no face, boxes grown by half);
/// returns how many of each. The folders must exist.
pub fn face_and_background_crops(
    names: &[&str],
    face_dir: &Path,
    background_dir: &Path,
) -> [usize; 2] {
    use image::imageops;
    let mut n = [0usize; 2];
    for name in names {
        let f = frame(name);
        let faces = legacy_pipeline().detect(&f).unwrap();
        let (w, h) = f.image.dimensions();
        for (i, face) in faces.iter().enumerate() {
            let b = face.bbox;
            let side = ((b[2] - b[0]).max(b[3] - b[1]) * 1.2) as u32;
            let x = (((b[0] + b[2]) / 2.0) as u32).saturating_sub(side / 2).min(w - side);
            let y = (((b[1] + b[3]) / 2.0) as u32).saturating_sub(side / 2).min(h - side);
            let out = face_dir.join(format!("{name}_{i}.png"));
            imageops::crop_imm(&f.image, x, y, side, side).to_image().save(out).unwrap();
            n[0] += 1;
        }
        let grown: Vec<[f32; 4]> = faces
            .iter()
            .map(|f| {
                let (fw, fh) = (f.width() * 0.5, f.height() * 0.5);
                [f.bbox[0] - fw, f.bbox[1] - fh, f.bbox[2] + fw, f.bbox[3] + fh]
            })
            .collect();
        for y in (0..h - 160).step_by(200) {
            for x in (0..w - 160).step_by(200) {
                let r = [x as f32, y as f32, x as f32 + 160.0, y as f32 + 160.0];
                if grown.iter().all(|g| edgeid::detect::iou(g, &r) == 0.0) {
                    let out = background_dir.join(format!("{name}_{x}_{y}.png"));
                    imageops::crop_imm(&f.image, x, y, 160, 160).to_image().save(out).unwrap();
                    n[1] += 1;
                }
            }
        }
    }
    n
}

/// A granted decision for alice at a door, as the daemon journals it.
pub fn decision(time_ms: i64, similarity: f32, face_px: f32) -> Decision {
    Decision {
        device: "door-1".into(),
        time_ms,
        first_seen_ms: time_ms - 150,
        decided_ms: time_ms + 20,
        camera: "door".into(),
        track_id: time_ms as u64,
        outcome: Outcome::Granted,
        reasons: vec![],
        identity: Some("alice".into()),
        similarity: Some(similarity),
        nearest: Some("alice".into()),
        frames_used: 5,
        frames_seen: 5,
        live: None,
        live_frames: vec![],
        pad_threshold: None,
        bona_fide: None,
        mad_threshold: None,
        tags: None,
        detector_score: 0.99,
        face_px,
        match_threshold: 0.44,
        encoder: "mobileface-256@80c1c6f0".into(),
        detector: "mtcnn".into(),
        crop_png: None,
    }
}

fn uniq() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A running daemon of [`Setup::daemon`]; killed on drop.
pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }
    /// Sends a signal by name (`HUP`, `TERM`).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill").arg(format!("-{name}")).arg(self.pid()).status().unwrap();
        assert!(ok.success(), "kill -{name} {}", self.pid());
    }
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }
    /// Whether it still runs (as the same process: a restart in place keeps its id).
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
    /// SIGKILL, then reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        self.child.wait().unwrap();
    }
    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a finished child did, with its own resource use (`wait4`: this child's alone, not the
/// test process's other children's).
pub struct Measured {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub usage: libc::rusage,
}

impl Measured {
    /// Peak resident memory, MiB.
    pub fn peak_mib(&self) -> f64 {
        self.usage.ru_maxrss as f64 / 1024.0
    }
}

/// Runs `command` to its end (stdout and stderr captured) and measures it.
#[allow(clippy::zombie_processes, reason = "reaped by wait4, which std's wait cannot do")]
pub fn measured(command: &mut Command) -> Measured {
    use std::io::Read;
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let mut stdout = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut stdout).unwrap();
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: wait4 writes only into the two locals it is given.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Measured { code, stdout, stderr: stderr.join().unwrap(), usage }
}

/// A throwaway CA and a server certificate it signed for 127.0.0.1 (openssl, the Debian
/// package): the CA's certificate, the server's certificate and its key (mode 0600).
pub fn certificate(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let script = "set -e
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -subj /CN=edgeid-test-ca -keyout ca.key -out ca.crt
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -subj /CN=127.0.0.1 -keyout api.key -out api.csr
        printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > api.ext
        openssl x509 -req -in api.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
            -extfile api.ext -out api.crt
        chmod 600 api.key";
    let made = std::process::Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .expect("sh and openssl (Debian package openssl) make the test certificates");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    (dir.join("ca.crt"), dir.join("api.crt"), dir.join("api.key"))
}

/// A Mosquitto broker (the Debian package's `/usr/sbin/mosquitto`) on 127.0.0.1, persisting
/// its sessions in a temporary folder so a restart keeps a subscriber's queued messages.
pub struct Mosquitto {
    child: std::process::Child,
    pub port: u16,
    dir: std::path::PathBuf,
}

impl Mosquitto {
    pub fn start(port: u16, dir: &std::path::Path) -> Mosquitto {
        Mosquitto::start_with(port, dir, "allow_anonymous true\n")
    }

    /// The same with `settings` (TLS, a password file) for its listener.
    pub fn start_with(port: u16, dir: &std::path::Path, settings: &str) -> Mosquitto {
        let conf = dir.join("mosquitto.conf");
        // Started as root, mosquitto would become the user `mosquitto`, who cannot write its
        // sessions into this test's folder.
        let user = if unsafe { libc::geteuid() } == 0 { "user root\n" } else { "" };
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\n{settings}persistence true\npersistence_location {}/\n{user}",
                dir.display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("/usr/sbin/mosquitto: install the Debian package `mosquitto` (.ci/run does)");
        crate::daemon::wait_for("the broker to listen", std::time::Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Mosquitto { child, port, dir: dir.to_path_buf() }
    }

    /// SIGTERM (the broker saves its sessions) and wait.
    pub fn stop(mut self) -> (u16, std::path::PathBuf) {
        let _ = std::process::Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        (self.port, self.dir.clone())
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mosquitto {
    /// A broker that takes only TLS (a certificate from a test CA made in `dir/mqtt-certs`)
    /// and only `user` with `password`; returns it and the CA certificate clients must trust.
    pub fn start_tls_with_password(
        port: u16,
        dir: &Path,
        user: &str,
        password: &str,
    ) -> (Mosquitto, PathBuf) {
        let certs = dir.join("mqtt-certs");
        std::fs::create_dir(&certs).unwrap();
        let (ca, cert, cert_key) = certificate(&certs);
        let passwd = dir.join("mosquitto.passwd");
        let made = Command::new("mosquitto_passwd")
            .args(["-c", "-b"])
            .arg(&passwd)
            .args([user, password])
            .output()
            .expect("mosquitto_passwd (Debian package mosquitto)");
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let settings = format!(
            "allow_anonymous false\npassword_file {}\ncafile {}\ncertfile {}\nkeyfile {}\n",
            passwd.display(),
            ca.display(),
            cert.display(),
            cert_key.display()
        );
        (Mosquitto::start_with(port, dir, &settings), ca)
    }
}

/// A gray 640×480 frame: nobody at the door.
pub fn empty_frame(path: &Path) {
    image::RgbImage::from_pixel(640, 480, image::Rgb([128, 128, 128])).save(path).unwrap();
}

/// A replay list in `dir` of one person arriving (6 frames of kiosk640.jpg), then leaving (4
/// empty frames, past the tracker's 3 missed frames): looped, one decision per arrival.
pub fn arrivals(dir: &Path) -> PathBuf {
    let empty = dir.join("empty.png");
    empty_frame(&empty);
    let list = dir.join("arrivals.txt");
    let kiosk = data("kiosk640.jpg").display().to_string();
    let arrival = format!("{kiosk}\n").repeat(6) + &format!("{}\n", empty.display()).repeat(4);
    std::fs::write(&list, arrival).unwrap();
    list
}
