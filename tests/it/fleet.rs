//! The fleet (`[fleet]`, `edgeid ship`, `edgeid fleet`) against a real PostgreSQL (a
//! throwaway cluster made with the Debian package's initdb, on 127.0.0.1) and a real
//! Mosquitto broker: three daemons on replay sources ship to one database, through a database
//! restart, and share one gallery published centrally; records edited or removed on a device
//! are reported; a replayed old change is refused.

use crate::common::{self, data, Mosquitto, Setup};

use crate::daemon::{free_port, http_get, wait_for};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use edgeid::journal::Journal;

/// A PostgreSQL cluster in a temporary folder, listening on 127.0.0.1:`port`, with a
/// database `edgeid` owned by the user `edgeid` (trust authentication: loopback only).
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    /// PostgreSQL refuses to run as root: then its programs run as the package's `postgres`.
    user: Option<&'static str>,
    /// libpq's environment for `psql` (a password, TLS) once the server asks for them.
    env: Vec<(&'static str, String)>,
}

impl Postgres {
    fn start(dir: &Path) -> Postgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("/usr/lib/postgresql: install the Debian package `postgresql` (.ci/run does)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max()
            .expect("no PostgreSQL server under /usr/lib/postgresql/*/bin");
        let root = unsafe { libc::geteuid() } == 0;
        let data = dir.join("pg");
        std::fs::create_dir(&data).unwrap();
        let user = if root {
            // The folders above must be passable for `postgres`, the cluster its own.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
            assert!(Command::new("chown").arg("postgres:").arg(&data).status().unwrap().success());
            Some("postgres")
        } else {
            None
        };
        let pg = Postgres { bin, data, port: free_port(), user, env: Vec::new() };
        pg.run("initdb", &["-A", "trust", "-U", "edgeid", "--no-sync", "-E", "UTF8"], &[]);
        pg.start_again();
        pg.psql("postgres", "CREATE DATABASE edgeid");
        pg
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match self.user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn run(&self, program: &str, args: &[&str], tail: &[&str]) {
        let o =
            self.command(program).args(args).arg("-D").arg(&self.data).args(tail).output().unwrap();
        assert!(
            o.status.success(),
            "{program}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
            self.port,
            self.data.display()
        );
        let log = self.data.join("log");
        let log = log.to_str().unwrap();
        self.run("pg_ctl", &["-w", "-l", log, "-o", &options], &["start"]);
    }

    /// A fast shutdown: clients are cut off at once.
    fn stop(&self) {
        self.run("pg_ctl", &["-w", "-m", "fast"], &["stop"]);
    }

    /// From now on only TLS connections with the password `password`: the server's
    /// certificate and key (copied into the cluster, its own), `hostssl` with SCRAM in
    /// pg_hba.conf and nothing else.
    fn require_tls(&mut self, cert: &Path, key: &Path, password: &str) {
        self.psql("postgres", &format!("ALTER ROLE edgeid PASSWORD '{password}'"));
        self.stop();
        for (from, to) in [(cert, "server.crt"), (key, "server.key")] {
            std::fs::copy(from, self.data.join(to)).unwrap();
            if let Some(user) = self.user {
                let owner = format!("{user}:");
                assert!(Command::new("chown")
                    .arg(owner)
                    .arg(self.data.join(to))
                    .status()
                    .unwrap()
                    .success());
            }
        }
        let conf = self.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, text).unwrap();
        std::fs::write(
            self.data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        self.env = vec![("PGSSLMODE", "require".into()), ("PGPASSWORD", password.into())];
        self.start_again();
    }

    fn database(&self) -> String {
        format!("host=127.0.0.1 port={} user=edgeid dbname=edgeid", self.port)
    }

    /// One query's rows, `|`-separated.
    fn psql(&self, db: &str, sql: &str) -> String {
        let o = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "edgeid", "-d", db])
            .args(["-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert!(o.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    fn int(&self, sql: &str) -> i64 {
        self.psql("edgeid", sql).parse().unwrap_or(0)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-w", "-m", "immediate", "-D"])
            .arg(&self.data)
            .arg("stop")
            .output();
    }
}

/// `edgeid` with `config` and `args`: (exit success, stdout, stderr).
fn edgeid(config: &Path, args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_edgeid"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The fleet's keys: the ed25519 secret key gallery changes are signed with (its public key
/// returned), made with `edgeid models keygen`.
fn signing_key(config: &Path, secret: &Path) -> String {
    let (ok, out, err) =
        edgeid(config, &["--json", "models", "keygen", "--secret", secret.to_str().unwrap()]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["public_key"].as_str().unwrap().to_string()
}

/// Appends `text` to a Setup's config, with `device` as its device id.
fn configure(s: &Setup, device: &str, text: &str) {
    let cfg = std::fs::read_to_string(s.config()).unwrap();
    assert!(cfg.contains("\ndevice = \"\"\n"), "the config names no device");
    let cfg = cfg.replace("\ndevice = \"\"\n", &format!("\ndevice = \"{device}\"\n"));
    std::fs::write(s.config(), cfg + text).unwrap();
}

/// A looping replay (at 5 frames/s in these tests: a decision every 2 s).
fn arrivals(tmp: &Path) -> String {
    common::arrivals(tmp).display().to_string()
}

fn metric(port: u16, name: &str) -> Option<i64> {
    let body = http_get(port, "/metrics");
    body.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<i64>().ok()))
}

fn journal_ids(path: &Path) -> Vec<i64> {
    Journal::open_existing(path).unwrap().since(0).unwrap().iter().map(|e| e.id).collect()
}

/// Three doors, one database, one broker (TLS and a password): every decision of each door is shipped once and
/// in order, through a database restart in the middle; an identity enrolled centrally is
/// granted at all three, then removed and denied at all three (the removal's propagation
/// time printed); a replayed old change and a forged one are refused; `fleet status` is clean,
/// then names a record edited on one door, one removed from the middle of another and two
/// removed from the end of the third.
#[test]
fn three_doors_ship_to_one_database_and_share_one_gallery() {
    let tmp = tempfile::tempdir().unwrap();
    let pg = Postgres::start(tmp.path());
    // The broker takes only TLS (a private CA's certificate) and a password.
    let (broker, ca) =
        Mosquitto::start_tls_with_password(free_port(), tmp.path(), "fleet", "broker secret");
    let broker_password = tmp.path().join("broker.password");
    std::fs::write(&broker_password, "broker secret\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(&broker_password, private).unwrap();
    }
    let replay = arrivals(tmp.path());

    // The operator's side: a config with the same encoder, the signing key, the schema.
    let hq = Setup::new(&replay, 5.0, true, "").without_live_requirement();
    let secret = tmp.path().join("fleet-signing.key");
    let public = signing_key(&hq.config(), &secret);
    let transport = tmp.path().join("fleet-transport.key");
    let fleet = format!(
        "\n[fleet]\ndatabase = \"{}\"\nbroker = \"127.0.0.1:{}\"\nbroker_ca_file = \"{}\"\nbroker_username = \"fleet\"\nbroker_password_file = \"{}\"\npublic_key = \"{public}\"\ntransport_key = \"{}\"\nship_every_s = 0.2\nverify_every_s = 1\n",
        pg.database(),
        broker.port,
        ca.display(),
        broker_password.display(),
        transport.display()
    );
    configure(&hq, "hq", &fleet);
    let (ok, out, err) = edgeid(&hq.config(), &["fleet", "status"]);
    assert!(!ok && err.contains("edgeid fleet migrate"), "before migrating: {out}{err}");
    let (ok, out, err) = edgeid(&hq.config(), &["fleet", "migrate"]);
    assert!(ok && out.contains("applied migration 3") && transport.exists(), "{out}{err}");
    let (ok, out, _) = edgeid(&hq.config(), &["fleet", "migrate"]);
    assert!(ok && !out.contains("applied"), "a second migrate applies nothing: {out}");

    // Three doors, new devices with no gallery, each with its metrics endpoint.
    let doors: Vec<(Setup, u16)> = (1..=3)
        .map(|i| {
            let port = free_port();
            let s = Setup::new(&replay, 5.0, true, &format!("127.0.0.1:{port}"))
                .without_live_requirement();
            configure(&s, &format!("door-{i}"), &fleet);
            (s, port)
        })
        .collect();
    let mut daemons: Vec<_> = doors.iter().map(|(s, _)| s.daemon(&[])).collect();
    let shipped = |device: &str| {
        pg.int(&format!(
            "SELECT count(*) FROM journal_records WHERE device = '{device}' AND tbl = 'decisions'"
        ))
    };
    let logs = |daemons: &[common::Daemon]| -> String {
        daemons.iter().map(|d| d.log()).collect::<Vec<_>>().join("\n----\n")
    };
    let start = Instant::now();
    while !(1..=3).all(|i| shipped(&format!("door-{i}")) >= 2) {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "no door shipped: {}\n{}",
            pg.psql("edgeid", "SELECT * FROM devices"),
            logs(&daemons)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Enrolled centrally: granted at every door.
    let photo = data("kiosk640.jpg").display().to_string();
    let key = secret.to_str().unwrap();
    let (ok, out, err) = edgeid(
        &hq.config(),
        &["fleet", "enroll", "--name", "visitor", "--signing-key", key, &photo],
    );
    assert!(ok && out.contains("gallery change 1"), "{out}{err}");
    let granted = "SELECT count(DISTINCT device) FROM edgeid_decisions WHERE identity = 'visitor' AND outcome = 'granted'";
    wait_for("a grant of `visitor` at all three doors", Duration::from_secs(120), || {
        pg.int(granted) == 3
    });

    // The database goes away and comes back while the doors keep deciding.
    let before: Vec<i64> = (1..=3).map(|i| shipped(&format!("door-{i}"))).collect();
    pg.stop();
    let down = Instant::now();
    wait_for("decisions journaled while the database is down", Duration::from_secs(60), || {
        doors.iter().zip(&before).all(|((s, _), b)| journal_ids(&s.journal()).len() as i64 > b + 1)
    });
    for (_, port) in &doors {
        assert_eq!(metric(*port, "edgeid_fleet_up"), Some(0), "shipping is seen failing");
    }
    // Regression (#42, 3): the lag kept the value of the last successful round (0) while
    // hundreds of records went unshipped; it counts what is journaled since.
    wait_for("the fleet lag to count the unshipped decisions", Duration::from_secs(60), || {
        doors.iter().all(|(_, port)| metric(*port, "edgeid_fleet_lag_records").unwrap_or(0) >= 3)
    });
    pg.start_again();
    eprintln!("database down for {:.1?}", down.elapsed());

    // Removed centrally: every door holds version 2 within seconds, then denies.
    let t0 = Instant::now();
    let (ok, out, err) =
        edgeid(&hq.config(), &["fleet", "remove", "visitor", "--signing-key", key]);
    assert!(ok && out.contains("gallery change 2"), "{out}{err}");
    // Regression (#42, 4): a removal of a name the fleet does not hold was published, signed,
    // and exited 0; a repeated one published again. Refused now, and nothing is published.
    for (name, why) in
        [("never-existed", "no change ever enrolled it"), ("visitor", "removed already")]
    {
        let (ok, out, err) = edgeid(&hq.config(), &["fleet", "remove", name, "--signing-key", key]);
        assert!(!ok, "{out}{err}");
        assert!(err.contains(&format!("no identity named `{name}`")) && err.contains(why), "{err}");
    }
    assert_eq!(pg.int("SELECT max(version) FROM gallery_changes"), 2, "nothing more published");
    wait_for("every door to hold version 2", Duration::from_secs(30), || {
        doors.iter().all(|(_, port)| metric(*port, "edgeid_fleet_gallery_version") == Some(2))
    });
    let propagation = t0.elapsed();
    eprintln!("removal applied at all three doors {propagation:.1?} after `fleet remove` returned");
    assert!(propagation < Duration::from_secs(10), "a removal takes seconds: {propagation:?}");
    let removed_ms = edgeid::clock::now_ms();
    let denied_after = |device: &str| {
        pg.int(&format!(
            "SELECT count(*) FROM journal_records WHERE device = '{device}' AND tbl = 'decisions' AND time_ms > {removed_ms} AND record ->> 'outcome' = 'denied'"
        ))
    };
    wait_for("a denial at every door after the removal", Duration::from_secs(120), || {
        (1..=3).all(|i| denied_after(&format!("door-{i}")) >= 2)
    });
    let late_grants = pg.int(&format!(
        "SELECT count(*) FROM edgeid_decisions WHERE identity = 'visitor' AND (record ->> 'time_ms')::bigint > {removed_ms} + 1000"
    ));
    assert_eq!(
        late_grants, 0,
        "nobody is granted as `visitor` on a frame 2 s (an arrival) after the removal was applied"
    );

    // While the doors decide and ship, the status shows no problem (a head is never behind
    // the records shipped).
    for _ in 0..5 {
        let (ok, out, err) = edgeid(&hq.config(), &["fleet", "status"]);
        assert!(ok && !out.contains("PROBLEM"), "{out}{err}");
        std::thread::sleep(Duration::from_millis(300));
    }

    // An old change replayed (live, as an attacker with the broker would), and a forged one.
    let old = pg.psql("edgeid", "SELECT message FROM gallery_changes WHERE version = 1");
    let mut forged: serde_json::Value = serde_json::from_str(&old).unwrap();
    let body = forged["body"].as_str().unwrap().replace("\"version\":1", "\"version\":3");
    forged["body"] = body.into();
    publish(broker.port, Some(&ca), "edgeid/fleet/gallery/1", old.as_bytes());
    publish(broker.port, Some(&ca), "edgeid/fleet/gallery/3", forged.to_string().as_bytes());
    wait_for("both refused at every door", Duration::from_secs(20), || {
        doors.iter().all(|(_, port)| metric(*port, "edgeid_fleet_changes_refused_total") == Some(2))
    });
    for (_, port) in &doors {
        assert_eq!(metric(*port, "edgeid_fleet_gallery_version"), Some(2));
    }

    // Stopped, then shipped to the end: the central copy is each journal, nothing lost or
    // doubled.
    for d in &daemons {
        d.signal("TERM");
    }
    for d in &mut daemons {
        assert!(d.wait().success(), "{}", d.log());
    }
    for (i, (s, _)) in doors.iter().enumerate() {
        let (ok, out, err) = edgeid(&s.config(), &["ship", "--once"]);
        assert!(ok, "{out}{err}");
        let device = format!("door-{}", i + 1);
        let ids = journal_ids(&s.journal());
        let central: Vec<i64> = pg
            .psql("edgeid", &format!("SELECT id FROM journal_records WHERE device = '{device}' AND tbl = 'decisions' ORDER BY id"))
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        assert_eq!(central, ids, "{device}: the central copy is the journal");
        eprintln!("{device}: {} decisions, all shipped once", ids.len());
    }
    let (ok, out, err) = edgeid(&hq.config(), &["--json", "fleet", "status"]);
    assert!(ok, "{out}{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let devices = status["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 3);
    for d in devices {
        assert_eq!(d["gallery_version"], 2, "{d}");
        assert_eq!(d["lag"], 0, "{d}");
        assert!(d["problems"].as_array().unwrap().is_empty(), "{d}");
    }

    // Tampering on the devices: an edited record (door-1), a record removed from the middle
    // (door-2), and the last two removed with the chain head rewritten to match, so the
    // device's own verification passes (door-3).
    let edit = |s: &Setup, sql: &str| {
        let c = rusqlite::Connection::open(s.journal()).unwrap();
        c.execute_batch(sql).unwrap();
    };
    edit(&doors[0].0, "UPDATE decisions SET identity = 'mallory' WHERE id = 2");
    edit(&doors[1].0, "DELETE FROM decisions WHERE id = 3");
    let last = *journal_ids(&doors[2].0.journal()).last().unwrap();
    edit(
        &doors[2].0,
        &format!(
            "DELETE FROM decisions WHERE id > {k};
             UPDATE chain_heads SET last_id = {k}, head = (SELECT hash FROM decisions WHERE id = {k}) WHERE tbl = 'decisions';",
            k = last - 2
        ),
    );
    // ...and its head anchor rewritten too (whoever can write the journal's folder can).
    let anchor = edgeid::journal::anchor::path_for(&doors[2].0.journal());
    let mut heads = edgeid::journal::anchor::read(&anchor).unwrap().unwrap();
    let conn = rusqlite::Connection::open(doors[2].0.journal()).unwrap();
    let k = last - 2;
    let hash: String =
        conn.query_row("SELECT hash FROM decisions WHERE id = ?1", [k], |r| r.get(0)).unwrap();
    heads.insert("decisions".into(), (k, hash));
    edgeid::journal::anchor::write(&anchor, &heads).unwrap();
    let (ok, _, _) = edgeid(&doors[2].0.config(), &["journal", "verify"]);
    assert!(ok, "door-3's own verification cannot see the end removed");
    for (s, _) in &doors {
        let _ = edgeid(&s.config(), &["ship", "--once"]);
    }
    let (ok, out, err) = edgeid(&hq.config(), &["fleet", "status"]);
    assert!(!ok, "problems make `fleet status` fail: {out}{err}");
    eprintln!("{out}");
    let about = |device: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.trim_start().starts_with(&format!("{device}:")))
            .map(str::to_string)
            .collect()
    };
    assert!(
        about("door-1").iter().any(|l| l.contains("decisions record 2") && l.contains("edited")),
        "{out}"
    );
    assert!(
        about("door-2").iter().any(|l| l.contains("decisions record 4") && l.contains("removed")),
        "{out}"
    );
    assert!(
        about("door-3").iter().any(
            |l| l.contains(&format!("records {}..={last} were removed from the end", last - 1))
        ),
        "{out}"
    );
    drop(broker);
}

/// Publishes one message (QoS 1, not retained), over TLS with the fleet's broker password when
/// given the CA (someone who may publish replays what they saw), and waits for the
/// acknowledgement.
fn publish(port: u16, ca: Option<&Path>, topic: &str, payload: &[u8]) {
    let id = format!("replayer-{}", edgeid::clock::now_ms());
    let mut options = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    options.set_max_packet_size(64 << 20, 64 << 20);
    if let Some(ca) = ca {
        let tls = edgeid::util::tls_client_trusting(ca).unwrap();
        options.set_credentials("fleet", "broker secret").set_transport(
            rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(tls)),
        );
    }
    let (client, mut connection) = rumqttc::Client::new(options, 10);
    client.publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.to_vec()).unwrap();
    for event in connection.iter() {
        if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) = event {
            break;
        }
        event.unwrap();
    }
}

/// A week of a busy door's decisions (one every 30 s: 20,160) ships whole with `edgeid ship
/// --once`, in order, once: a second run sends nothing. The rate is printed.
#[test]
fn a_week_of_decisions_ships_whole_and_once() {
    let tmp = tempfile::tempdir().unwrap();
    let pg = Postgres::start(tmp.path());
    let s = Setup::new("unused.txt", 5.0, false, "");
    configure(&s, "door-week", &format!("\n[fleet]\ndatabase = \"{}\"\n", pg.database()));
    let (ok, out, err) = edgeid(&s.config(), &["fleet", "migrate"]);
    assert!(ok, "{out}{err}");
    let n: i64 = 7 * 24 * 3600 / 30;
    let journal = Journal::open(&s.journal()).unwrap();
    let start = 1_764_000_000_000;
    let made = Instant::now();
    for i in 0..n {
        journal.append(&common::decision(start + i * 30_000, 0.7, 90.0)).unwrap();
    }
    drop(journal);
    eprintln!("{n} decisions journaled in {:.1?}", made.elapsed());
    pg.psql("edgeid", "SELECT 1");
    let t = Instant::now();
    let (ok, out, err) = edgeid(&s.config(), &["--json", "ship", "--once"]);
    let took = t.elapsed();
    assert!(!ok || out.contains("\"decisions\""), "{out}{err}");
    assert!(ok, "{out}{err}");
    eprintln!(
        "shipped {n} decisions in {took:.2?}: {:.0} records/s",
        n as f64 / took.as_secs_f64()
    );
    assert_eq!(pg.int("SELECT count(*) FROM journal_records"), n);
    assert_eq!(pg.int("SELECT max(id) FROM journal_records"), n);
    let (ok, out, _) = edgeid(&s.config(), &["--json", "ship", "--once"]);
    let round: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(ok && round["shipped"][0][1] == 0 && round["lag"] == 0, "{out}");
    assert_eq!(pg.int("SELECT count(*) FROM journal_records"), n);
    let per_hour = pg.int("SELECT max(decisions) FROM edgeid_decisions_per_door_hour");
    assert_eq!(per_hour, 120, "one decision every 30 s is 120 an hour");
}

/// A gallery applies fleet changes only forward: an add, then a removal, then the add again
/// (a replay straight into the file's API) is refused and the person stays removed; the
/// version survives reopening.
#[test]
fn a_gallery_takes_fleet_changes_only_forward() {
    use edgeid::encode::Embedding;
    use edgeid::gallery::{Gallery, GalleryError, GalleryOptions, Template};
    let tmp = tempfile::tempdir().unwrap();
    let (path, key) = (tmp.path().join("g.db"), tmp.path().join("g.key"));
    let mut g = Gallery::open(
        &path,
        &GalleryOptions { key: key.clone(), encoder: "enc@1".into(), dim: 3, create: true },
    )
    .unwrap();
    let t = [Template {
        embedding: Embedding(vec![1.0, 0.0, 0.0]),
        source: "fleet".into(),
        crop: None,
    }];
    g.apply_versioned(1, "zoe", Some(&t)).unwrap();
    assert_eq!((g.len(), g.fleet_version().unwrap()), (1, 1));
    g.apply_versioned(2, "zoe", None).unwrap();
    let replay = g.apply_versioned(1, "zoe", Some(&t)).unwrap_err();
    assert!(matches!(replay, GalleryError::Stale { version: 1, held: 2, .. }), "{replay}");
    assert!(g.is_empty());
    drop(g);
    assert_eq!(Gallery::stored_fleet_version(&path).unwrap(), 2);
    let g = Gallery::open(
        &path,
        &GalleryOptions { key: key.clone(), encoder: "enc@1".into(), dim: 3, create: false },
    )
    .unwrap();
    assert!(g.is_empty() && g.list().unwrap().is_empty());
}

/// TLS to the database: with `ca_file` (the server's CA) and `password_file`, a door ships
/// over TLS to a server that takes nothing else; with another CA the certificate is refused,
/// without `ca_file` the server refuses the plain connection, and a password file others can
/// read stops it; each with one message that names the fix.
#[test]
fn shipping_over_tls_with_a_password() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let mut pg = Postgres::start(tmp.path());
    let certs = tmp.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let (ca, cert, key) = common::certificate(&certs);
    pg.require_tls(&cert, &key, "door secret");
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let (other_ca, _, _) = common::certificate(&other);
    let password = tmp.path().join("db.password");
    std::fs::write(&password, "door secret\n").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();

    let s = Setup::new("unused.txt", 5.0, false, "");
    let fleet = |ca: Option<&Path>| {
        let ca = ca.map(|c| format!("ca_file = \"{}\"\n", c.display())).unwrap_or_default();
        format!(
            "\n[fleet]\ndatabase = \"{}\"\npassword_file = \"{}\"\n{ca}",
            pg.database(),
            password.display()
        )
    };
    let base = std::fs::read_to_string(s.config()).unwrap();
    configure(&s, "door-tls", &fleet(Some(&ca)));
    let (ok, out, err) = edgeid(&s.config(), &["fleet", "migrate"]);
    assert!(ok, "{out}{err}");
    let journal = Journal::open(&s.journal()).unwrap();
    for i in 0..5 {
        journal.append(&common::decision(1_764_000_000_000 + i * 1000, 0.7, 90.0)).unwrap();
    }
    let (ok, out, err) = edgeid(&s.config(), &["ship", "--once"]);
    assert!(ok && out.contains("shipped 5 decisions"), "{out}{err}");
    let ssl = pg.psql("edgeid", "SELECT count(*) FROM pg_stat_ssl WHERE ssl");
    assert!(ssl.parse::<i64>().unwrap() >= 1, "psql itself is on TLS: {ssl}");

    let retry = |ca: Option<&Path>| {
        std::fs::write(s.config(), &base).unwrap();
        configure(&s, "door-tls", &fleet(ca));
        edgeid(&s.config(), &["ship", "--once"])
    };
    let (ok, _, err) = retry(Some(&other_ca));
    eprintln!("another CA: {err}");
    assert!(
        !ok && err.contains("fleet database") && err.to_lowercase().contains("certificate"),
        "{err}"
    );
    let (ok, _, err) = retry(None);
    eprintln!("no TLS: {err}");
    assert!(!ok && err.contains("fleet database") && err.contains("pg_hba.conf"), "{err}");
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, _, err) = retry(Some(&ca));
    assert!(!ok && err.contains("chmod 600"), "{err}");
    assert_eq!(pg.int("SELECT count(*) FROM journal_records"), 5, "nothing was lost or doubled");
}

/// A door whose fleet transport key is missing does not start, and says which file to copy;
/// a signing key that is not the fleet's is refused;
/// `ship` with no `[fleet]` names the section to add; a database that is not there ends
/// `ship --once` with the address and the fix, and the journal is untouched.
#[test]
fn fleet_setup_mistakes_end_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Setup::new(&arrivals(tmp.path()), 5.0, false, "").without_live_requirement();
    let (ok, _, err) = edgeid(&s.config(), &["ship", "--once"]);
    assert!(!ok && err.contains("no [fleet] section"), "{err}");
    let public = "d04ab232742bb4ab3a1368bd4615e4e6d0224ab71a016baf8520a332c9778737";
    let missing = tmp.path().join("fleet-transport.key");
    configure(
        &s,
        "door-x",
        &format!(
            "\n[fleet]\ndatabase = \"host=127.0.0.1 port={} user=edgeid dbname=edgeid\"\nbroker = \"127.0.0.1:{}\"\npublic_key = \"{public}\"\ntransport_key = \"{}\"\n",
            free_port(),
            free_port(),
            missing.display()
        ),
    );
    let (ok, _, err) = edgeid(&s.config(), &["run", "--max-frames", "2"]);
    assert!(
        !ok && err.contains("transport_key") && err.contains(missing.to_str().unwrap()),
        "{err}"
    );
    // A signing key that is not the fleet's: refused before anything is encoded or stored.
    let secret = tmp.path().join("other-signing.key");
    signing_key(&s.config(), &secret);
    let photo = data("kiosk640.jpg").display().to_string();
    let key = secret.to_str().unwrap();
    let (ok, _, err) =
        edgeid(&s.config(), &["fleet", "enroll", "--name", "x", "--signing-key", key, &photo]);
    assert!(!ok && err.contains(&format!("fleet.public_key is {public}")), "{err}");
    assert!(!s.gallery().exists(), "a refused start makes no gallery");
    let journal = Journal::open(&s.journal()).unwrap();
    journal.append(&common::decision(1_764_000_000_000, 0.7, 90.0)).unwrap();
    drop(journal);
    let (ok, _, err) = edgeid(&s.config(), &["ship", "--once"]);
    assert!(
        !ok && err.contains("fleet database host=127.0.0.1") && err.contains("nothing is lost"),
        "{err}"
    );
    assert_eq!(journal_ids(&s.journal()), vec![1]);
}

/// A folder holding an offer: `edgeid.toml` with `text`, and copies of the repo's `models`
/// (each manifest with its ONNX file).
fn offer_folder(dir: &Path, text: &str, models: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("edgeid.toml"), text).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    for m in models {
        for ext in ["toml", "onnx"] {
            let name = format!("{m}.{ext}");
            std::fs::copy(repo.join(&name), dir.join(&name)).unwrap();
        }
    }
    dir.to_path_buf()
}

/// The match thresholds of a journal's decisions after record `after`.
fn thresholds_after(journal: &Path, after: i64) -> Vec<f64> {
    let entries = Journal::open_existing(journal).unwrap().after(after, usize::MAX).unwrap();
    entries
        .iter()
        .map(|e| serde_json::to_value(e).unwrap()["match_threshold"].as_f64().unwrap())
        .collect()
}

/// A config offer over the fleet's channel, to a door whose manifests must be in its signed
/// set (`[trust]`): new thresholds and PAD models (the files travel in it) without a signed set
/// of their own are refused; with one, signed with the door's trust key, the offer is checked,
/// audited and applied by the running door, which restarts on it in place (same process) and
/// decides with it; an offer whose audit fails under the door's own audit policy is refused
/// and the door keeps running the one before, saying why on `/metrics`, in its state and in
/// `fleet status`; the applied offer replayed live is refused as a rollback; an offer that sets
/// a device's own table, or names a model that is not there, is refused by the publisher
/// before anything is published.
#[test]
fn a_config_offer_is_audited_then_applied_or_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let pg = Postgres::start(tmp.path());
    let broker = Mosquitto::start(free_port(), tmp.path());
    let replay = arrivals(tmp.path());
    let hq = Setup::new(&replay, 5.0, true, "").without_live_requirement();
    let secret = tmp.path().join("fleet-signing.key");
    let public = signing_key(&hq.config(), &secret);
    let fleet = format!(
        "\n[fleet]\ndatabase = \"{}\"\nbroker = \"127.0.0.1:{}\"\npublic_key = \"{public}\"\ntransport_key = \"{}\"\nship_every_s = 0.2\n",
        pg.database(),
        broker.port,
        tmp.path().join("fleet-transport.key").display()
    );
    configure(&hq, "hq", &fleet);
    let (ok, out, err) = edgeid(&hq.config(), &["fleet", "migrate"]);
    assert!(ok && out.contains("applied migration 4"), "{out}{err}");

    let port = free_port();
    let door =
        Setup::new(&replay, 5.0, true, &format!("127.0.0.1:{port}")).without_live_requirement();
    let updates = tmp.path().join("door-updates");
    configure(&door, "door-1", &format!("{fleet}updates = \"{}\"\n", updates.display()));
    door.enrol("visitor", "kiosk640.jpg");
    // The door runs only manifests signed with its trust key (`edgeid models sign`).
    let trust_secret = tmp.path().join("trust.key");
    let trust_public = signing_key(&door.config(), &trust_secret);
    let sign = |set: &Path, manifests: &[PathBuf]| {
        let mut args = vec!["models", "sign", "--secret", trust_secret.to_str().unwrap(), "-o"];
        args.push(set.to_str().unwrap());
        args.extend(manifests.iter().map(|m| m.to_str().unwrap()));
        let (ok, out, err) = edgeid(&door.config(), &args);
        assert!(ok, "{out}{err}");
    };
    let door_set = tmp.path().join("door-set.toml");
    sign(&door_set, &edgeid::config::Config::load(&door.config()).unwrap().manifests());
    let text = std::fs::read_to_string(door.config()).unwrap();
    let trust = format!(
        "\n[trust]\npublic_key = \"{trust_public}\"\nsigned_set = \"{}\"\n",
        door_set.display()
    );
    std::fs::write(door.config(), text + &trust).unwrap();
    let mut daemon = door.daemon(&[]);
    let pid = daemon.pid();
    let granted_since = |after: i64| {
        let Ok(j) = Journal::open_existing(&door.journal()) else { return false };
        j.after(after, usize::MAX).unwrap().iter().any(|e| {
            let v = serde_json::to_value(e).unwrap();
            v["identity"] == "visitor" && v["outcome"] == "granted"
        })
    };
    wait_for("a first grant", Duration::from_secs(120), || granted_since(0));

    // Mistakes are refused by the publisher, before anything is published.
    let key = secret.to_str().unwrap();
    let offer = |dir: &Path| {
        edgeid(&hq.config(), &["fleet", "offer", "--signing-key", key, dir.to_str().unwrap()])
    };
    let own = offer_folder(&tmp.path().join("own"), "[daemon]\ndevice = \"x\"\n", &[]);
    let (ok, out, err) = offer(&own);
    assert!(!ok && err.contains("it sets `daemon`, which an offer may not"), "{out}{err}");
    let missing = offer_folder(
        &tmp.path().join("missing"),
        "[encoder]\nmanifest = \"mobileface.toml\"\n",
        &[],
    );
    let (ok, out, err) = offer(&missing);
    assert!(!ok && err.contains("mobileface.toml"), "{out}{err}");
    assert_eq!(pg.int("SELECT count(*) FROM config_offers"), 0, "nothing published");

    // Offer 1: a higher match threshold and the PAD heads, their files in the offer, but no
    // signed set for them: the door refuses it.
    let pad = "[recognition]\nmatch_threshold = 0.65\n\n[pad]\nenabled = true\nmodels = [\"liveness.toml\", \"antispoof.toml\"]\nfusion = \"mean\"\nthreshold = 0.65\n";
    let one = offer_folder(&tmp.path().join("one"), pad, &["liveness", "antispoof"]);
    let (ok, out, err) = offer(&one);
    assert!(ok && out.contains("config offer 1"), "{out}{err}");
    wait_for("offer 1 refused", Duration::from_secs(60), || {
        metric(port, "edgeid_fleet_config_offers_refused_total") == Some(1)
    });
    let log = daemon.log();
    assert!(log.contains("config offer 1 refused, keeping the device's own config"), "{log}");
    assert!(log.contains("liveness.toml is not in the signed set"), "{log}");

    // Offer 2: the same with a set of its manifests signed with the door's trust key.
    let two = offer_folder(
        &tmp.path().join("two"),
        &format!("{pad}\n[trust]\nsigned_set = \"offer-set.toml\"\n"),
        &["liveness", "antispoof"],
    );
    sign(&two.join("offer-set.toml"), &[two.join("liveness.toml"), two.join("antispoof.toml")]);
    let (ok, out, err) = offer(&two);
    assert!(ok && out.contains("config offer 2"), "{out}{err}");
    let t0 = Instant::now();
    // #42, 9: the checks said how far they were, on /metrics and in `fleet status` (the devices
    // row), while they ran.
    let (mut stages, mut reported) = (std::collections::BTreeSet::new(), false);
    wait_for("the door to run offer 2", Duration::from_secs(300), || {
        let metrics = http_get(port, "/metrics");
        stages.extend(
            (1..=3).filter(|s| metrics.contains(&format!("edgeid_fleet_config_offer_stage {s}"))),
        );
        reported |= pg.int("SELECT count(*) FROM devices WHERE config_checking LIKE 'offer 2: running the generalization audit%'") == 1;
        metrics.contains("edgeid_fleet_config_version 2")
    });
    assert!(stages.contains(&3), "the audit stage never showed on /metrics: {stages:?}");
    assert!(reported, "the audit stage never reached the devices row");
    eprintln!(
        "offer 2 checked, audited and applied, the door back up {:.1?} after publishing",
        t0.elapsed()
    );
    assert!(daemon.running(), "restarted in place: {}", daemon.log());
    assert_eq!(daemon.pid(), pid);
    let log = daemon.log();
    assert!(log.contains("config offer 2 applied (audit: mobilefacenet"), "{log}");
    assert!(
        log.contains("config offer 2: running the generalization audit on its encoder"),
        "{log}"
    );
    assert!(log.contains("running the fleet's config offer 2 over it"), "{log}");
    let mark = journal_ids(&door.journal()).last().copied().unwrap_or(0);
    wait_for("a grant under offer 2", Duration::from_secs(60), || granted_since(mark));
    let after = thresholds_after(&door.journal(), mark);
    assert!(after.iter().all(|&t| (t - 0.65).abs() < 1e-6), "decided at 0.65: {after:?}");
    assert!(updates.join("2").join("antispoof.onnx").exists());

    // The door's audit policy tightened (its own file): offer 3 fails its audit and is refused.
    let cfg = std::fs::read_to_string(door.config()).unwrap();
    std::fs::write(door.config(), cfg.replace("min_retention = 0.7", "min_retention = 0.9"))
        .unwrap();
    let audits_before =
        pg.int("SELECT count(*) FROM journal_records WHERE device = 'door-1' AND tbl = 'audits'");
    let three =
        offer_folder(&tmp.path().join("three"), "[recognition]\nmatch_threshold = 0.7\n", &[]);
    let (ok, out, err) = offer(&three);
    assert!(ok && out.contains("config offer 3"), "{out}{err}");
    // (The count starts again with the process: the restart on offer 2 came between.)
    wait_for("offer 3 refused", Duration::from_secs(300), || {
        metric(port, "edgeid_fleet_config_offers_refused_total") == Some(1)
    });
    let log = daemon.log();
    assert!(log.contains("config offer 3 refused, keeping offer 2: its audit"), "{log}");
    assert!(log.contains("audit.min_retention = 0.9"), "{log}");
    assert_eq!(metric(port, "edgeid_fleet_config_version"), Some(2));
    assert_eq!(daemon.pid(), pid);
    assert!(daemon.running());
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(updates.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["applied"], 2);
    assert_eq!(state["refused"]["version"], 3);
    assert!(!updates.join("3").exists(), "a refused offer is not kept");
    let mark = journal_ids(&door.journal()).last().copied().unwrap_or(0);
    wait_for("a decision after the refusal", Duration::from_secs(60), || granted_since(mark));
    let after = thresholds_after(&door.journal(), mark);
    assert!(after.iter().all(|&t| (t - 0.65).abs() < 1e-6), "still at 0.65: {after:?}");
    wait_for("the refusal and its audit in the central database", Duration::from_secs(30), || {
        pg.int("SELECT count(*) FROM devices WHERE config_version = 2 AND config_refused_version = 3 AND config_refused LIKE '%audit%'") == 1
            && pg.int("SELECT count(*) FROM journal_records WHERE device = 'door-1' AND tbl = 'audits'") > audits_before
    });
    let (_, out, err) = edgeid(&hq.config(), &["fleet", "status"]);
    assert!(
        out.contains("offer 2") && out.contains("door-1: refused config offer 3: its audit"),
        "{out}{err}"
    );

    // Offer 2 replayed live (someone who may publish on the broker saw it): a rollback, refused.
    let message = pg.psql("edgeid", "SELECT message FROM config_offers WHERE version = 2");
    publish(broker.port, None, "edgeid/fleet/config", message.trim().as_bytes());
    wait_for("the replay refused", Duration::from_secs(30), || {
        metric(port, "edgeid_fleet_config_offers_refused_total") == Some(2)
    });
    assert!(daemon.log().contains("not newer than the one this device runs, 2"));
    assert_eq!(metric(port, "edgeid_fleet_config_version"), Some(2));

    // A later start runs offer 2 again, from the door's own folder.
    daemon.signal("TERM");
    assert!(daemon.wait().success(), "{}", daemon.log());
    let again = door.daemon(&[]);
    wait_for("the door started again", Duration::from_secs(60), || {
        again.log().contains("edgeid running")
    });
    let log = again.log();
    assert!(
        log.contains("running the fleet's config offer 2")
            && log.contains("thresholds: match 0.65"),
        "{log}"
    );
    drop(broker);
}

/// Regression (#42, 3): a door given exactly the grants docs/fleet.md listed failed on
/// `edgeid_migrations` (permission denied). `edgeid fleet door-role` prints the role a door
/// connects as, with every right shipping needs and no others: a door connecting as it ships
/// its journal and reports itself, and cannot touch the gallery changes.
#[test]
fn regression_a_door_ships_with_exactly_the_role_fleet_door_role_makes() {
    let tmp = tempfile::tempdir().unwrap();
    let pg = Postgres::start(tmp.path());
    let owner = Setup::new("unused.txt", 5.0, false, "");
    configure(&owner, "hq", &format!("\n[fleet]\ndatabase = \"{}\"\n", pg.database()));
    let (ok, out, err) = edgeid(&owner.config(), &["fleet", "migrate"]);
    assert!(ok, "{out}{err}");
    let (ok, sql, err) = edgeid(&owner.config(), &["fleet", "door-role", "Door-1"]);
    assert!(ok, "{err}");
    assert!(sql.contains("CREATE ROLE edgeid_door_door_1 LOGIN;"), "{sql}");
    pg.psql("edgeid", &sql);

    let door = Setup::new("unused.txt", 5.0, false, "");
    let as_door = format!("host=127.0.0.1 port={} user=edgeid_door_door_1 dbname=edgeid", pg.port);
    configure(&door, "Door-1", &format!("\n[fleet]\ndatabase = \"{as_door}\"\n"));
    let journal = Journal::open(&door.journal()).unwrap();
    for i in 0..5 {
        journal.append(&common::decision(1_764_000_000_000 + i * 1000, 0.7, 90.0)).unwrap();
    }
    let (ok, out, err) = edgeid(&door.config(), &["ship", "--once"]);
    assert!(ok && out.contains("shipped 5 decisions"), "{out}{err}");
    let (ok, out, err) = edgeid(&door.config(), &["ship", "--once"]);
    assert!(ok, "a second round (the device row updated): {out}{err}");
    assert_eq!(pg.int("SELECT count(*) FROM journal_records WHERE device = 'Door-1'"), 5);
    assert_eq!(pg.int("SELECT count(*) FROM devices WHERE device = 'Door-1'"), 1);
    // Nothing beyond: the door's role cannot publish a gallery change.
    let o = Command::new(pg.bin.join("psql"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            "edgeid_door_door_1",
            "-d",
            "edgeid",
        ])
        .args(["-At", "-v", "ON_ERROR_STOP=1", "-c", "DELETE FROM gallery_changes"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Regression (#42, 2): the daemon's last shipping round ran at the signal, before the
    // decisions taken at stop were journaled. One person stands in front of the camera, never
    // decided while it runs; their decision, taken at SIGTERM, is shipped before it exits.
    let list = tmp.path().join("standing.txt");
    std::fs::write(&list, format!("{}\n", common::data("kiosk640.jpg").display())).unwrap();
    let running =
        Setup::new(&list.display().to_string(), 10.0, true, "").without_live_requirement();
    let cfg = std::fs::read_to_string(running.config()).unwrap();
    std::fs::write(
        running.config(),
        cfg.replace("decide_after_frames = 5", "decide_after_frames = 100000"),
    )
    .unwrap();
    configure(
        &running,
        "door-2",
        &format!(
            "\n[fleet]\ndatabase = \"{}\"\nship_every_s = 3600\n",
            as_door.replace("door_1", "door_2")
        ),
    );
    let (ok, sql, err) = edgeid(&owner.config(), &["fleet", "door-role", "door-2"]);
    assert!(ok, "{err}");
    pg.psql("edgeid", &sql);
    running.enrol("alice", "sample2.jpg");
    let mut daemon = running.daemon(&[]);
    wait_for("the door running and reported", Duration::from_secs(120), || {
        assert!(daemon.running(), "{}", daemon.log());
        pg.int("SELECT count(*) FROM devices WHERE device = 'door-2'") == 1
    });
    std::thread::sleep(Duration::from_secs(2));
    daemon.signal("TERM");
    assert!(daemon.wait().success(), "{}", daemon.log());
    let journaled = journal_ids(&running.journal());
    assert_eq!(journaled.len(), 1, "one decision, at the stop");
    assert_eq!(
        pg.int(
            "SELECT count(*) FROM journal_records WHERE device = 'door-2' AND tbl = 'decisions'"
        ),
        1,
        "the decision taken at stop was not shipped before exit: {}",
        daemon.log()
    );
}
