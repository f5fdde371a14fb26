//! Outputs (`[[outputs]]`) on the daemon's replay: an `exec` bridge gets every decision its
//! filter takes, in journal order, across a bridge that fails and a restart; a webhook
//! receiver on 127.0.0.1 checks each POST's HMAC-SHA256, and is down for the first seconds of
//! the run (`/healthz` and `/metrics` say so) without a decision being lost.

use crate::common;
use crate::daemon::{free_port, http_get, replay_list, rows, wait_for};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Mosquitto, Setup};
use edgeid::daemon::{self, Control, RunOptions};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The replay with alice enrolled (20 decisions, 2 of them grants) and `outputs` appended to
/// its config.
fn setup(outputs: &str, http: &str) -> Setup {
    let s = Setup::legacy(&replay_list(), 0.0, false, http);
    let cfg = std::fs::read_to_string(s.config()).unwrap();
    std::fs::write(s.config(), format!("{cfg}\n{outputs}")).unwrap();
    s.enrol("alice", "sample2.jpg");
    s
}

fn run(s: &Setup) -> daemon::RunSummary {
    daemon::run(&s.config(), &RunOptions::default(), &Control::default()).unwrap()
}

/// The JSON lines of a file an `exec` bridge appended to.
fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn an_exec_bridge_gets_every_decision_in_order_across_a_failure_and_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (all, grants) = (tmp.path().join("all.jsonl"), tmp.path().join("grants.jsonl"));
    // The bridge fails (exit 3) while a flag file exists.
    let flag = tmp.path().join("broken");
    std::fs::write(&flag, "").unwrap();
    let bridge = |out: &std::path::Path| {
        format!(
            "command = [\"/bin/sh\", \"-c\", \"if [ -e {} ]; then echo relay offline >&2; exit 3; fi; cat >> {}\"]",
            flag.display(),
            out.display()
        )
    };
    let outputs = format!(
        "[[outputs]]\nname = \"bridge\"\nkind = \"exec\"\n{}\nretry_max_s = 1\n\n\
         [[outputs]]\nname = \"grants\"\nkind = \"exec\"\n{}\nfilter = {{ outcomes = [\"granted\"] }}\n",
        bridge(&all),
        bridge(&grants)
    );
    let s = setup(&outputs, "");
    // First run: the bridge is down all along; the daemon gives the outputs their drain time
    // (10 s) and stops; nothing was delivered and nothing is lost.
    let summary = run(&s);
    assert_eq!(summary.decisions, 20);
    assert!(lines(&all).is_empty() && lines(&grants).is_empty());
    // The bridge is back; the next run (the same 20 frames again) delivers the first run's
    // decisions, then its own, in journal order, each once.
    std::fs::remove_file(&flag).unwrap();
    run(&s);
    let journal = rows(&s.journal());
    assert_eq!(journal.len(), 40);
    let got = lines(&all);
    let ids: Vec<i64> = got.iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, (1..=40).collect::<Vec<_>>());
    for (line, (id, outcome, who)) in got.iter().zip(&journal) {
        assert_eq!(
            (line["id"].as_i64(), line["outcome"].as_str()),
            (Some(*id), Some(outcome.as_str()))
        );
        assert!(line["identity"].as_str() == Some(who) || line["reasons"][0].as_str() == Some(who));
        assert_eq!(line["output"], "bridge");
        assert!(line["device"].as_str().is_some_and(|d| !d.is_empty()));
    }
    // The filtered output: the four grants (alice, twice per run), nothing else.
    let g = lines(&grants);
    assert_eq!(g.len(), 4, "{g:?}");
    assert!(g.iter().all(|l| l["outcome"] == "granted" && l["identity"] == "alice"));
    // The second run's grants were fresh: the door may act on them. The first run's were
    // delivered a run later, but within max_age_s (10 s) only if the runs were quick: not asserted.
    assert!(g[2..].iter().all(|l| l["actuate"] == true), "{g:?}");
}

/// A daemon SIGKILLed while its bridge is being fed, then started again: the bridge has every
/// journaled decision, in order, the record in flight at the kill at most twice.
#[test]
fn an_exec_bridge_misses_nothing_across_a_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bridge.jsonl");
    let outputs = format!(
        "[[outputs]]\nname = \"bridge\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"cat >> {}\"]\n",
        out.display()
    );
    let s = setup(&outputs, "");
    let cfg = std::fs::read_to_string(s.config()).unwrap().replace("loop = false", "loop = true");
    std::fs::write(s.config(), cfg).unwrap();
    let mut daemon = s.daemon(&[]);
    wait_for("six events at the bridge", Duration::from_secs(120), || lines(&out).len() >= 6);
    daemon.kill(); // SIGKILL
    let journaled = rows(&s.journal()).len();
    // Restarted for 8 frames: what the first run journaled and did not deliver goes first.
    let again = s.spawn(&["run", "--max-frames", "8"]).wait_with_output().unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let journal = rows(&s.journal());
    assert!(journal.len() > journaled, "the restart journaled more");
    let got: Vec<i64> = lines(&out).iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert!(got.windows(2).all(|w| w[0] <= w[1]), "out of order: {got:?}");
    let mut ids = got.clone();
    ids.dedup();
    assert_eq!(ids, (1..=journal.len() as i64).collect::<Vec<_>>(), "every record: {got:?}");
    assert!(got.len() <= ids.len() + 1, "more than the record in flight twice: {got:?}");
}

/// What a receiver kept of each POST: delivery id, body, whether the signature verified.
type Received = Arc<Mutex<Vec<(String, serde_json::Value, bool)>>>;

/// A receiver that answers 200 to each POST, keeping (delivery id, body, signature valid).
fn receiver(listener: TcpListener, key: &'static [u8]) -> Received {
    let got = Received::default();
    let kept = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            take_post(stream, key, &kept);
        }
    });
    got
}

/// The same over HTTPS with the certificate and key given (PEM files).
fn tls_receiver(
    listener: TcpListener,
    key: &'static [u8],
    cert: &Path,
    cert_key: &Path,
) -> Received {
    use rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls;
    let chain: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let private = rustls::pki_types::PrivateKeyDer::from_pem_file(cert_key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .unwrap();
    let config = Arc::new(config);
    let got = Received::default();
    let kept = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(tcp) = stream else { continue };
            let connection = rustls::ServerConnection::new(config.clone()).unwrap();
            take_post(rustls::StreamOwned::new(connection, tcp), key, &kept);
        }
    });
    got
}

/// Reads one POST from `stream`, keeps it, answers 200.
fn take_post(mut stream: impl Read + Write, key: &[u8], kept: &Received) {
    let mut reader = BufReader::new(&mut stream);
    let (mut length, mut delivery, mut signature) = (0, String::new(), String::new());
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
        let value = value.trim().to_string();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().unwrap(),
            "x-edgeid-delivery" => delivery = value,
            "x-edgeid-signature" => signature = value,
            _ => {}
        }
        line.clear();
    }
    if length == 0 {
        return; // a handshake refused, a connection dropped
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    drop(reader);
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(&body);
    let bytes = signature.strip_prefix("sha256=").and_then(edgeid::util::unhex);
    let valid = bytes.is_some_and(|b| mac.verify_slice(&b).is_ok());
    kept.lock().unwrap().push((delivery, serde_json::from_slice(&body).unwrap(), valid));
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.flush();
}

#[test]
fn a_webhook_receiver_down_at_first_misses_nothing_and_checks_every_signature() {
    const KEY: &[u8] = b"a shared secret of the door controller";
    let tmp = tempfile::tempdir().unwrap();
    let secret = tmp.path().join("webhook.key");
    std::fs::write(&secret, [KEY, b"\n"].concat()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let port = free_port();
    let outputs = format!(
        "[[outputs]]\nname = \"building\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/edgeid\"\nsecret_file = {:?}\ntimeout_s = 2\nretry_max_s = 1\n",
        secret.display()
    );
    let metrics_port = free_port();
    let s = setup(&outputs, &format!("127.0.0.1:{metrics_port}"));
    // A looping replay, stopped by the test once everything arrived.
    let cfg = std::fs::read_to_string(s.config()).unwrap().replace("loop = false", "loop = true");
    std::fs::write(s.config(), cfg).unwrap();
    let control = Control::default();
    let config = s.config();
    let daemon = std::thread::spawn(move || {
        daemon::run(&config, &RunOptions { max_frames: Some(48) }, &control)
    });
    // Nobody listens yet: the output fails, and says so.
    wait_for("/healthz to name the output", Duration::from_secs(120), || {
        http_get(metrics_port, "/healthz").contains("outputs behind: building failing")
    });
    let metrics = http_get(metrics_port, "/metrics");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{output=\"building\"}}")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(value("edgeid_output_failures_total") >= 1.0);
    assert_eq!(value("edgeid_output_up"), 0.0);
    assert!(value("edgeid_output_lag_records") >= 1.0);
    // Regression (#42, 1): the lag froze at its value when the first delivery failed while more
    // decisions were journaled; it counts them now, and so does /healthz.
    let lag_now = || -> f64 {
        let m = http_get(metrics_port, "/metrics");
        m.lines()
            .find(|l| l.starts_with("edgeid_output_lag_records{output=\"building\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    let first = value("edgeid_output_lag_records");
    wait_for("the lag to grow during the outage", Duration::from_secs(120), || {
        lag_now() >= first + 5.0
    });
    let health = http_get(metrics_port, "/healthz");
    let waiting: f64 = health
        .split(" record(s) waiting")
        .next()
        .and_then(|h| h.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{health}"));
    assert!(waiting >= first + 5.0, "{health}");
    // The receiver comes up: everything journaled arrives, in order, signed.
    let got = receiver(TcpListener::bind(("127.0.0.1", port)).unwrap(), KEY);
    let summary = daemon.join().unwrap().unwrap();
    assert_eq!(summary.decisions, 40);
    let got = got.lock().unwrap().clone();
    let mut ids: Vec<i64> = got.iter().map(|(_, b, _)| b["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] <= w[1]), "out of order: {ids:?}");
    ids.dedup();
    assert_eq!(ids, (1..=40).collect::<Vec<_>>(), "every record, at least once");
    assert!(got.iter().all(|(_, _, valid)| *valid), "a signature did not verify");
    for (delivery, body, _) in &got {
        assert_eq!(delivery, &format!("{}-{}", body["device"].as_str().unwrap(), body["id"]));
    }
    assert!(http_get(metrics_port, "/healthz").is_empty(), "the daemon has stopped");
}

/// A webhook whose key file is missing, or readable by other users, stops the daemon at
/// start, naming the file and the fix, before any frame: the journal is left as it was.
#[test]
fn a_missing_or_exposed_webhook_key_stops_the_start() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let exposed = tmp.path().join("exposed.key");
    std::fs::write(&exposed, "a key\n").unwrap();
    std::fs::set_permissions(&exposed, std::fs::Permissions::from_mode(0o644)).unwrap();
    for (key, expected) in [
        ("no-such.key", ["cannot be read", "head -c 32 /dev/urandom"]),
        ("exposed.key", ["can be read by other users (mode 0644)", "chmod 600"]),
    ] {
        let outputs = format!(
            "[[outputs]]\nname = \"hq\"\nkind = \"webhook\"\nurl = \"https://hq.example/edgeid\"\nsecret_file = {:?}\n",
            tmp.path().join(key).display()
        );
        let s = setup(&outputs, "");
        let out = s.spawn(&["run"]).wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(error.len(), 1, "{stderr}");
        for part in ["output hq", key].into_iter().chain(expected) {
            assert!(error[0].contains(part), "{part}: {stderr}");
        }
        assert!(rows(&s.journal()).is_empty());
    }
}

/// An MQTT message as the subscriber got it: topic and payload.
type Message = (String, Vec<u8>);

/// Every decision of a replay run reaches an MQTT subscriber through a real broker that is
/// stopped and restarted in the middle of the run: each record at least once, in order; the
/// device's availability is `online` while it runs and `offline` after.
#[test]
fn mqtt_events_survive_a_broker_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let broker = Mosquitto::start(port, tmp.path());
    // The subscriber: a persistent session (clean_session off) on every edgeid topic, QoS 1.
    let got: Arc<Mutex<Vec<Message>>> = Arc::default();
    {
        let got = got.clone();
        let mut options = rumqttc::MqttOptions::new("edgeid-test-subscriber", "127.0.0.1", port);
        options.set_clean_session(false).set_keep_alive(Duration::from_secs(5));
        let (client, mut connection) = rumqttc::Client::new(options, 64);
        client.subscribe("edgeid/#", rumqttc::QoS::AtLeastOnce).unwrap();
        client.subscribe("homeassistant/#", rumqttc::QoS::AtLeastOnce).unwrap();
        std::thread::spawn(move || {
            let _client = client;
            for event in connection.iter() {
                match event {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        got.lock().unwrap().push((p.topic.clone(), p.payload.to_vec()));
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
    }
    let decisions = |got: &[Message]| -> Vec<serde_json::Value> {
        got.iter()
            .filter(|(t, _)| t.ends_with("/decision"))
            .map(|(_, p)| serde_json::from_slice(p).unwrap())
            .collect()
    };
    wait_for("the subscription", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    std::thread::sleep(Duration::from_millis(500));
    let outputs = format!(
        "[[outputs]]\nname = \"events\"\nkind = \"mqtt\"\nbroker = \"127.0.0.1:{port}\"\ntimeout_s = 2\nretry_max_s = 1\n"
    );
    let s = setup(&outputs, "");
    let cfg = std::fs::read_to_string(s.config()).unwrap();
    let cfg =
        cfg.replace("loop = false", "loop = true").replace("device = \"\"", "device = \"door-3\"");
    std::fs::write(s.config(), cfg).unwrap();
    let config = s.config();
    let daemon = std::thread::spawn(move || {
        daemon::run(&config, &RunOptions { max_frames: Some(48) }, &Control::default())
    });
    wait_for("three decisions through the broker", Duration::from_secs(120), || {
        decisions(&got.lock().unwrap()).len() >= 3
    });
    // The broker goes away mid-run, and comes back two seconds later.
    let (port, dir) = broker.stop();
    let seen_while_up = decisions(&got.lock().unwrap()).len();
    std::thread::sleep(Duration::from_secs(2));
    let _broker = Mosquitto::start(port, &dir);
    let summary = daemon.join().unwrap().unwrap();
    assert_eq!(summary.decisions, 40);
    assert!(seen_while_up < 40, "the restart came after every decision: {seen_while_up}");
    let start = std::time::Instant::now();
    loop {
        let mut ids: Vec<i64> =
            decisions(&got.lock().unwrap()).iter().map(|d| d["id"].as_i64().unwrap()).collect();
        ids.dedup();
        if ids.len() >= 40 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "all 40 decisions; got {ids:?} (seen {seen_while_up} before the restart)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let got = got.lock().unwrap().clone();
    let events = decisions(&got);
    let mut ids: Vec<i64> = events.iter().map(|d| d["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] <= w[1]), "out of order: {ids:?}");
    ids.dedup();
    assert_eq!(ids, (1..=40).collect::<Vec<_>>(), "every record, at least once");
    let journal = rows(&s.journal());
    for e in &events {
        let (id, outcome, _) = &journal[e["id"].as_i64().unwrap() as usize - 1];
        assert_eq!((e["id"].as_i64(), e["outcome"].as_str()), (Some(*id), Some(outcome.as_str())));
    }
    assert!(got
        .iter()
        .filter(|(t, _)| t.ends_with("/decision"))
        .all(|(t, _)| t == "edgeid/door-3/replay/decision"));
    let availability: Vec<&[u8]> = got
        .iter()
        .filter(|(t, _)| t == "edgeid/door-3/availability")
        .map(|(_, p)| p.as_slice())
        .collect();
    assert_eq!(availability.first(), Some(&&b"online"[..]), "{availability:?}");
    assert_eq!(availability.last(), Some(&&b"offline"[..]), "a clean stop says offline");
    // Regression (#42, 5): the clean stop closed the socket without DISCONNECT, so the last
    // will fired too and `offline` came twice.
    let after_online = availability.iter().rev().take_while(|p| **p != b"online").count();
    assert_eq!(after_online, 1, "one offline per clean stop: {availability:?}");
    // Home Assistant discovery: the camera as a sensor of its last outcome (retained) and as
    // an event entity firing on every decision, each as Home Assistant's MQTT docs define.
    let config = |component: &str| -> serde_json::Value {
        let topic = format!("homeassistant/{component}/edgeid_door-3_replay/config");
        let (_, config) = got.iter().find(|(t, _)| *t == topic).expect("a discovery message");
        serde_json::from_slice(config).unwrap()
    };
    let (sensor, event) = (config("sensor"), config("event"));
    assert_eq!(sensor["state_topic"], "edgeid/door-3/replay/state");
    assert_eq!(sensor["json_attributes_topic"], "edgeid/door-3/replay/decision");
    assert_eq!(sensor["value_template"], "{{ value_json.outcome }}");
    assert_eq!(event["state_topic"], "edgeid/door-3/replay/decision");
    assert_eq!(event["event_types"], serde_json::json!(["granted", "denied"]));
    home_assistant_schema("sensor", &sensor);
    home_assistant_schema("event", &event);
    // The state is retained: a subscriber that comes later (Home Assistant restarted) gets the
    // last outcome at once, and no name with it.
    let retained = retained_message(port, "edgeid/door-3/replay/state");
    let (id, outcome, _) = journal.last().unwrap();
    assert_eq!(
        (retained["id"].as_i64(), retained["outcome"].as_str()),
        (Some(*id), Some(outcome.as_str()))
    );
    assert!(retained.get("identity").is_none(), "{retained}");
}

/// Checks a discovery payload against Home Assistant's MQTT documentation for `component`
/// (https://www.home-assistant.io/integrations/sensor.mqtt and event.mqtt): the keys it
/// requires, each key one the component documents, the types of those used, and a device
/// and origin block as "MQTT discovery" defines them.
fn home_assistant_schema(component: &str, config: &serde_json::Value) {
    let common = [
        "name",
        "unique_id",
        "state_topic",
        "value_template",
        "json_attributes_topic",
        "availability_topic",
        "icon",
        "device",
        "origin",
    ];
    let (required, own): (&[&str], &[&str]) = match component {
        "sensor" => (
            &["state_topic"],
            &["device_class", "state_class", "unit_of_measurement", "force_update"],
        ),
        "event" => (&["state_topic", "event_types"], &["device_class"]),
        other => panic!("no schema for {other}"),
    };
    let keys = config.as_object().expect("a JSON object");
    for key in required {
        assert!(keys.contains_key(*key), "{component}: `{key}` is required: {config}");
    }
    for key in keys.keys() {
        let documented = [common.as_slice(), required, own].concat();
        assert!(
            documented.contains(&key.as_str()),
            "{component}: `{key}` is not documented: {config}"
        );
    }
    for key in ["name", "unique_id", "state_topic", "value_template", "availability_topic", "icon"]
    {
        assert!(
            keys.get(key).is_none_or(|v| v.is_string()),
            "{component}: `{key}` must be a string"
        );
    }
    if component == "event" {
        let types = config["event_types"].as_array().expect("event_types is a list");
        assert!(!types.is_empty() && types.iter().all(|t| t.is_string()), "{config}");
    }
    let device = config["device"].as_object().expect("device is a map");
    assert!(device["identifiers"].as_array().is_some_and(|i| !i.is_empty()), "{config}");
    for key in device.keys() {
        assert!(
            [
                "identifiers",
                "name",
                "manufacturer",
                "model",
                "sw_version",
                "hw_version",
                "configuration_url",
                "connections",
                "suggested_area",
                "via_device"
            ]
            .contains(&key.as_str()),
            "device.{key}"
        );
    }
    let origin = config["origin"].as_object().expect("origin is a map");
    assert!(origin["name"].is_string(), "origin.name is required: {config}");
    for key in origin.keys() {
        assert!(["name", "sw_version", "support_url"].contains(&key.as_str()), "origin.{key}");
    }
}

/// The retained message on `topic`, as a new subscriber gets it.
fn retained_message(port: u16, topic: &str) -> serde_json::Value {
    let options = rumqttc::MqttOptions::new("edgeid-test-late", "127.0.0.1", port);
    let (client, mut connection) = rumqttc::Client::new(options, 16);
    client.subscribe(topic, rumqttc::QoS::AtLeastOnce).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        if let Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)))) =
            connection.recv_timeout(left)
        {
            assert!(p.retain, "not retained");
            return serde_json::from_slice(&p.payload).unwrap();
        }
    }
    panic!("no retained message on {topic}");
}

/// The `gpio` output's relay, here a relay board's program (`command`, run with `on` and
/// `off`: the same pulse logic as a GPIO line): one pulse of `pulse_ms` per fresh grant, none
/// for a denial, and none for a grant that could not be acted on within `max_age_s` (a door
/// must not open after the person left), though it is delivered.
#[test]
fn a_relay_is_pulsed_once_per_fresh_grant_and_never_late() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, flag) = (tmp.path().join("relay.log"), tmp.path().join("unplugged"));
    std::fs::write(&flag, "").unwrap();
    let outputs = format!(
        "[[outputs]]\nname = \"door\"\nkind = \"gpio\"\npulse_ms = 300\nmax_age_s = 2\nretry_max_s = 1\n\
         command = [\"/bin/sh\", \"-c\", \"if [ -e {} ]; then exit 3; fi; echo \\\"$0 $(date +%s%3N)\\\" >> {}\"]\n",
        flag.display(),
        log.display()
    );
    let s = setup(&outputs, "");
    // The relay board is unplugged for the whole first run: its 2 grants are not acted on.
    run(&s);
    assert!(!log.exists());
    std::fs::remove_file(&flag).unwrap();
    let second = edgeid::clock::now_ms();
    run(&s);
    let journal = edgeid::journal::Journal::open_existing(&s.journal()).unwrap().since(0).unwrap();
    let grants: Vec<_> =
        journal.iter().filter(|e| e.decision.identity.is_some()).map(|e| &e.decision).collect();
    assert_eq!(grants.len(), 4, "alice twice per run");
    let switched: Vec<(String, i64)> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            let (what, ms) = l.split_once(' ').unwrap();
            (what.to_string(), ms.parse().unwrap())
        })
        .collect();
    // The second run switches the relay off as it starts (a pulse cut by a crash may have
    // left it on), then for its two grants on and off after the pulse; the first run's grants,
    // late by then, switched nothing.
    let what: Vec<&str> = switched.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(what, ["off", "on", "off", "on", "off"], "{switched:?}");
    let switched = &switched[1..];
    for pair in switched.chunks(2) {
        assert!(pair[0].1 >= second, "a pulse for a first-run grant: {switched:?}");
        assert!(pair[1].1 - pair[0].1 >= 300, "{switched:?}");
    }
    for (pulse, grant) in switched.chunks(2).zip(&grants[2..]) {
        assert!(pulse[0].1 >= grant.decided_ms && pulse[0].1 - grant.decided_ms < 2000);
    }
}

/// The `gpio` output on the kernel's GPIO simulator (gpio-sim, configured through configfs):
/// the relay line goes active for a grant and back, and a door contact opened with no grant
/// is counted as forced open. Where the machine has no gpio-sim (no configfs, or the module
/// absent, as in containers), the test says so and ends: the pulse logic is covered through a
/// program by `a_relay_is_pulsed_once_per_fresh_grant_and_never_late`.
#[test]
fn gpio_sim_relay_and_door_contact() {
    let root = std::path::Path::new("/sys/kernel/config/gpio-sim");
    if !root.is_dir() {
        // Straight to the test's stderr, past the harness's capture: seen in every CI log.
        let _ = writeln!(
            std::io::stderr(),
            "\n*** GPIO SIMULATOR NOT AVAILABLE: {} does not exist (configfs not mounted or the gpio-sim module not loaded: `modprobe gpio-sim`). The GPIO character device path was NOT exercised; the relay's pulse logic is covered through a program by outputs::a_relay_is_pulsed_once_per_fresh_grant_and_never_late. ***\n",
            root.display()
        );
        return;
    }
    let sim = root.join(format!("edgeid-test-{}", std::process::id()));
    let bank = sim.join("bank0");
    std::fs::create_dir(&sim).unwrap();
    std::fs::create_dir(&bank).unwrap();
    std::fs::write(bank.join("num_lines"), "4").unwrap();
    std::fs::write(sim.join("live"), "1").unwrap();
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::write(self.0.join("live"), "0");
            let _ = std::fs::remove_dir(self.0.join("bank0"));
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _cleanup = Cleanup(sim.clone());
    let chip = std::fs::read_to_string(bank.join("chip_name")).unwrap().trim().to_string();
    let dev = std::fs::read_to_string(sim.join("dev_name")).unwrap().trim().to_string();
    let line = |n: u32, what: &str| {
        std::path::Path::new("/sys/devices/platform")
            .join(&dev)
            .join(&chip)
            .join(format!("sim_gpio{n}"))
            .join(what)
    };
    let port = free_port();
    let outputs = format!(
        "[[outputs]]\nname = \"door\"\nkind = \"gpio\"\nchip = \"{chip}\"\nline = 0\ndoor_line = 1\npulse_ms = 1500\n"
    );
    let s = setup(&outputs, &format!("127.0.0.1:{port}"));
    let cfg = std::fs::read_to_string(s.config()).unwrap();
    std::fs::write(s.config(), cfg.replace("loop = false", "loop = true")).unwrap();
    // Nobody enrolled at first: no grant, no pulse.
    let o = s.spawn(&["gallery", "remove", "alice"]).wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let _daemon = s.daemon(&[]);
    wait_for("the daemon", Duration::from_secs(120), || http_get(port, "/healthz").contains("200"));
    // The door opens with no grant before it: forced open.
    std::fs::write(line(1, "pull"), "pull-up").unwrap();
    wait_for("a forced opening counted", Duration::from_secs(10), || {
        http_get(port, "/metrics").contains("edgeid_door_forced_open_total{output=\"door\"} 1")
    });
    std::fs::write(line(1, "pull"), "pull-down").unwrap();
    // Alice enrolled while running: the relay line goes active for her grant, then back.
    s.enrol("alice", "sample2.jpg");
    let value = || std::fs::read_to_string(line(0, "value")).unwrap_or_default().trim().to_string();
    wait_for("the relay line active for a grant", Duration::from_secs(180), || value() == "1");
    wait_for("the relay line back to inactive", Duration::from_secs(10), || value() == "0");
}

/// A relay on a GPIO chip that is not there stops the start, naming the chip, the line and
/// what to check (the character device is opened before the first frame).
#[test]
fn a_missing_gpio_chip_stops_the_start_with_the_fix() {
    let outputs = "[[outputs]]\nname = \"door\"\nkind = \"gpio\"\nchip = \"gpiochip-edgeid-none\"\nline = 4\n";
    let s = setup(outputs, "");
    let o = s.spawn(&["run"]).wait_with_output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("output door: cannot take GPIO line 4 of /dev/gpiochip-edgeid-none")
            && err.contains("check outputs.chip and outputs.line"),
        "{err}"
    );
    assert_eq!(rows(&s.journal()).len(), 0);
}

/// A webhook receiver on HTTPS with a certificate from a private CA: with `ca_file` naming
/// that CA, every record of the run arrives, in order, signed (the public roots would refuse
/// the certificate: it chains to no public CA).
#[test]
fn an_https_webhook_on_a_private_ca_gets_every_record() {
    const KEY: &[u8] = b"the building's key";
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, cert_key) = common::certificate(tmp.path());
    let secret = tmp.path().join("webhook.key");
    std::fs::write(&secret, KEY).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = tls_receiver(listener, KEY, &cert, &cert_key);
    let outputs = format!(
        "[[outputs]]\nname = \"building\"\nkind = \"webhook\"\nurl = \"https://127.0.0.1:{port}/edgeid\"\nsecret_file = {:?}\nca_file = {:?}\nretry_max_s = 1\n",
        secret.display(),
        ca.display()
    );
    let s = setup(&outputs, "");
    assert_eq!(run(&s).decisions, 20);
    let got = got.lock().unwrap().clone();
    let ids: Vec<i64> = got.iter().map(|(_, b, _)| b["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>());
    assert!(got.iter().all(|(_, _, valid)| *valid));
}

/// MQTT over TLS with a user name and password: a Mosquitto listener that takes only TLS
/// (a certificate from a private CA) and refuses anonymous clients gets every decision of the
/// run, in order; the password file is refused while others can read it.
#[test]
fn mqtt_over_tls_with_a_password() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let (_broker, ca) =
        Mosquitto::start_tls_with_password(port, tmp.path(), "door-3", "a broker password");
    let tls = rumqttc::TlsConfiguration::Rustls(edgeid::util::tls_client_trusting(&ca).unwrap());
    let got: Arc<Mutex<Vec<Message>>> = Arc::default();
    let subscribed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (got, subscribed) = (got.clone(), subscribed.clone());
        let mut options = rumqttc::MqttOptions::new("edgeid-test-tls", "127.0.0.1", port);
        options
            .set_credentials("door-3", "a broker password")
            .set_transport(rumqttc::Transport::tls_with_config(tls));
        let (client, mut connection) = rumqttc::Client::new(options, 64);
        client.subscribe("edgeid/#", rumqttc::QoS::AtLeastOnce).unwrap();
        std::thread::spawn(move || {
            let _client = client;
            for event in connection.iter() {
                match event {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        subscribed.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        got.lock().unwrap().push((p.topic.clone(), p.payload.to_vec()));
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
    }
    wait_for("the TLS subscriber", Duration::from_secs(20), || {
        subscribed.load(std::sync::atomic::Ordering::SeqCst)
    });
    let password = tmp.path().join("mqtt.password");
    std::fs::write(&password, "a broker password\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o640)).unwrap();
    let outputs = format!(
        "[[outputs]]\nname = \"events\"\nkind = \"mqtt\"\nbroker = \"127.0.0.1:{port}\"\nusername = \"door-3\"\npassword_file = {:?}\nca_file = {:?}\ndiscovery_prefix = \"\"\n",
        password.display(),
        ca.display()
    );
    let s = setup(&outputs, "");
    let o = s.spawn(&["run"]).wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("password_file") && err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(run(&s).decisions, 20);
    wait_for("every decision at the subscriber", Duration::from_secs(30), || {
        got.lock().unwrap().iter().filter(|m| m.0.ends_with("/decision")).count() >= 20
    });
    let ids: Vec<i64> = got
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.0.ends_with("/decision"))
        .map(|m| serde_json::from_slice::<serde_json::Value>(&m.1).unwrap()["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>());
}

/// Regression (#42, 2): the outputs took the journal's end at the signal, so the decisions
/// taken at stop (open tracks decided as the daemon stops) were journaled after it and left
/// behind every output's cursor until the next start (past `max_age_s` by then). Here one
/// person stands in front of the camera for the whole run, never decided (decide_after_frames
/// far away), so their one decision is taken at SIGTERM: the bridge has it before the daemon
/// exits.
#[test]
fn regression_decisions_taken_at_sigterm_are_delivered_before_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("standing.txt");
    std::fs::write(&list, format!("{}\n", common::data("kiosk640.jpg").display())).unwrap();
    let out = tmp.path().join("bridge.jsonl");
    let s = Setup::new(&list.display().to_string(), 10.0, true, "").without_live_requirement();
    let cfg = std::fs::read_to_string(s.config())
        .unwrap()
        .replace("decide_after_frames = 5", "decide_after_frames = 100000");
    let bridge = format!(
        "\n[[outputs]]\nname = \"bridge\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"cat >> {}\"]\n",
        out.display()
    );
    std::fs::write(s.config(), cfg + &bridge).unwrap();
    s.enrol("alice", "sample2.jpg");
    let mut daemon = s.daemon(&[]);
    wait_for("the daemon running", Duration::from_secs(120), || {
        assert!(daemon.running(), "{}", daemon.log());
        daemon.log().contains("edgeid running")
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(rows(&s.journal()).is_empty(), "decided before the stop");
    daemon.signal("TERM");
    assert!(daemon.wait().success(), "{}", daemon.log());
    let journal = rows(&s.journal());
    assert_eq!(journal.len(), 1, "one decision, at the stop: {journal:?}");
    let got: Vec<i64> = lines(&out).iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert_eq!(got, [journal[0].0], "{}", daemon.log());
}
