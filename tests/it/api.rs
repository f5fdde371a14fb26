//! The operator API (`[api]`) of a running daemon, driven end to end over HTTP on 127.0.0.1:
//! a person enrolled by upload is granted at their next arrival, and denied once removed; the
//! tokens' scopes hold; decisions, marks, identification and the live event stream; HTTPS with
//! a certificate; and the operator page in a real headless Chromium.

use crate::common;
use crate::daemon::{free_port, wait_for};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use common::{data, Setup};
use edgeid::journal::{Entry, Journal};

/// A looping replay at 10 frames/s of one person arriving (6 frames of kiosk640.jpg), then
/// leaving (4 empty frames): one decision per arrival. The daemon has the API on `port`, with
/// `extra` appended to `[api]`, and the gallery does not exist yet (a new device).
pub(crate) fn kiosk_with_api(tmp: &Path, port: u16, extra: &str) -> Setup {
    let list = common::arrivals(tmp);
    let s = Setup::new(&list.display().to_string(), 10.0, true, "").without_live_requirement();
    let cfg = std::fs::read_to_string(s.config()).unwrap();
    let api = format!("\n[api]\nlisten = \"127.0.0.1:{port}\"\ntokens = \"api-tokens\"\n{extra}");
    std::fs::write(s.config(), cfg.replace("store_crops = false", "store_crops = true") + &api)
        .unwrap();
    s
}

/// Makes a token with `edgeid token add` and returns it.
pub(crate) fn token(s: &Setup, name: &str, scope: &str) -> String {
    let o =
        s.spawn(&["--json", "token", "add", name, "--scope", scope]).wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["token"].as_str().unwrap().to_string()
}

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// A request's status and body (JSON when it is).
pub(crate) fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, serde_json::Value) {
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let mut response = agent.run(req.body(body.unwrap_or_default()).unwrap()).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

fn entries(journal: &Path) -> Vec<Entry> {
    if !journal.exists() {
        return Vec::new();
    }
    Journal::open_existing(journal).and_then(|j| j.since(0)).unwrap_or_default()
}

#[test]
fn the_api_enrols_by_upload_removes_at_once_and_refuses_a_wrong_token() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = kiosk_with_api(tmp.path(), port, "");
    let ops = token(&s, "ops", "enrol");
    let viewer = token(&s, "wall", "read");
    let mut daemon = s.daemon(&[]);
    let base = format!("http://127.0.0.1:{port}");
    let agent = agent();
    let get = |path: &str, t: Option<&str>| call(&agent, "GET", &format!("{base}{path}"), t, None);
    wait_for("the API", Duration::from_secs(120), || {
        agent.get(&format!("{base}/api/status")).call().is_ok()
    });
    wait_for("a first arrival decided", Duration::from_secs(120), || {
        !entries(&s.journal()).is_empty()
    });
    let first = &entries(&s.journal())[0].decision;
    assert_eq!((first.outcome.as_str(), first.reasons.clone()), ("denied", vec!["unknown".into()]));

    // Tokens: none, a wrong one, and one whose scope is too small.
    assert_eq!(get("/api/decisions", None).0, 401);
    let (status, body) = get("/api/decisions", Some("eid_0000"));
    assert_eq!((status, body["error"].as_str()), (401, Some("the token is not valid")));
    let photo = std::fs::read(data("kiosk640.jpg")).unwrap();
    let enrol_url = format!("{base}/api/identities/kiosk");
    let (status, body) = call(&agent, "POST", &enrol_url, Some(&viewer), Some(photo.clone()));
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("scope read; this needs enrol"), "{body}");
    // Not a photo: refused with what to send.
    let (status, body) = call(&agent, "POST", &enrol_url, Some(&ops), Some(b"hello".to_vec()));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("not an image"), "{body}");

    // Enrolled by upload: the replayed person is granted at their next arrival.
    let (status, body) = call(&agent, "POST", &enrol_url, Some(&ops), Some(photo.clone()));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "kiosk");
    let enrolled_at = edgeid::clock::now_ms();
    wait_for("kiosk granted", Duration::from_secs(120), || {
        entries(&s.journal()).iter().any(|e| e.decision.identity.as_deref() == Some("kiosk"))
    });
    let granted =
        entries(&s.journal()).into_iter().find(|e| e.decision.identity.is_some()).unwrap();
    assert!(granted.decision.first_seen_ms >= enrolled_at - 1000, "{granted:?}");
    let (_, list) = get("/api/identities", Some(&viewer));
    assert_eq!(list["identities"][0]["name"], "kiosk", "{list}");

    // Identification of an upload, the recent decisions (newest first, with their crops).
    let (status, report) =
        call(&agent, "POST", &format!("{base}/api/identify"), Some(&viewer), Some(photo));
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["faces"][0]["identity"], "kiosk", "{report}");
    let (_, recent) = get("/api/decisions?limit=100", Some(&viewer));
    let ids: Vec<i64> =
        recent["decisions"].as_array().unwrap().iter().map(|d| d["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]) && ids.contains(&granted.id), "{ids:?}");
    let crop_url = format!("{base}/api/decisions/{}/crop", granted.id);
    let mut png =
        agent.get(&crop_url).header("Authorization", format!("Bearer {viewer}")).call().unwrap();
    let png = png.body_mut().read_to_vec().unwrap();
    let crop = image::load_from_memory(&png).unwrap();
    assert_eq!((crop.width(), crop.height()), (112, 112));
    // Regressions (#42, 6): a decision that does not exist is named as such (it was told crops
    // need store_crops); numbers read as recorded (a threshold of 0.5351 showed as
    // 0.535099983215332); a similarity is a cosine, never above 1.
    let (status, missing) = get("/api/decisions/99999/crop", Some(&viewer));
    assert_eq!(status, 404, "{missing}");
    assert!(missing["error"].as_str().unwrap().contains("no decision 99999"), "{missing}");
    let shown = recent["decisions"].as_array().unwrap();
    for d in shown {
        let text = d.to_string();
        assert!(d["similarity"].as_f64().is_none_or(|v| v <= 1.0), "{text}");
    }
    assert!(shown.iter().any(|d| d.to_string().contains("\"match_threshold\":0.5351")), "{recent}");

    // A decision marked wrong is kept, with who marked it; the decision itself is unchanged.
    let wrong = format!("{base}/api/decisions/{}/wrong", entries(&s.journal())[0].id);
    let note = br#"{"note": "that was kiosk, not a stranger", "truth": "kiosk"}"#.to_vec();
    assert_eq!(call(&agent, "POST", &wrong, Some(&viewer), Some(note.clone())).0, 403);
    let (status, mark) = call(&agent, "POST", &wrong, Some(&ops), Some(note));
    assert_eq!((status, mark["marked_by"].as_str()), (200, Some("ops")), "{mark}");
    // Regression (#37, 6): a note or a truth that forges lines or escapes is refused.
    for body in [
        br#"{"note": "ok\n2026-12-07 decision 1 marked wrong by admin", "truth": null}"#.to_vec(),
        br#"{"note": "\u001b[2J", "truth": null}"#.to_vec(),
        br#"{"note": "", "truth": "al\u00adice"}"#.to_vec(),
    ] {
        let (status, answer) = call(&agent, "POST", &wrong, Some(&ops), Some(body));
        assert_eq!(status, 400, "{answer}");
    }
    let none = format!("{base}/api/decisions/999999/wrong");
    assert_eq!(call(&agent, "POST", &none, Some(&ops), None).0, 404);
    let (_, recent) = get("/api/decisions?limit=1000", Some(&viewer));
    let oldest = recent["decisions"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(oldest["wrong"][0]["truth"], "kiosk", "{oldest}");
    assert_eq!(oldest["outcome"], "denied");

    // Removed: denied within one frame. The worker looks at the gallery before each frame,
    // so only the frame it may already hold when the removal commits can be judged on the
    // old one: no decision on a frame captured more than one frame interval (100 ms at 10
    // frames/s) after the removal grants kiosk, and the next arrivals are denied.
    let (status, body) = call(&agent, "DELETE", &enrol_url, Some(&ops), None);
    assert_eq!(status, 200, "{body}");
    let removed_at = edgeid::clock::now_ms();
    assert_eq!(call(&agent, "DELETE", &enrol_url, Some(&ops), None).0, 404);
    wait_for("two arrivals after the removal", Duration::from_secs(120), || {
        entries(&s.journal()).iter().filter(|e| e.decision.first_seen_ms > removed_at).count() >= 2
    });
    let after: Vec<_> = entries(&s.journal())
        .into_iter()
        .filter(|e| e.decision.time_ms > removed_at + 100)
        .collect();
    assert!(after.len() >= 2, "{after:?}");
    assert!(
        after.iter().all(|e| e.decision.identity.is_none()),
        "kiosk granted after the removal: {after:?}"
    );

    // The live stream: every decision after the one given, in order, each once.
    let mut events = agent
        .get(&format!("{base}/api/events?after=1"))
        .header("Authorization", format!("Bearer {viewer}"))
        .call()
        .unwrap();
    let mut lines = BufReader::new(events.body_mut().as_reader()).lines();
    let mut got = Vec::new();
    while got.len() < 3 {
        let line = lines.next().unwrap().unwrap();
        if let Some(id) = line.strip_prefix("id:") {
            got.push(id.trim().parse::<i64>().unwrap());
        }
    }
    assert_eq!(got, vec![2, 3, 4]);
    daemon.signal("TERM");
    assert!(daemon.wait().success(), "{}", daemon.log());
    let log = daemon.log();
    assert!(
        log.contains("`ops` enrolled `kiosk`") && log.contains("`ops` removed `kiosk`"),
        "{log}"
    );
    // The marks, for calibration: `journal marks`.
    let o = s.spawn(&["--json", "journal", "marks"]).wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let marks: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(marks.len(), 1, "{marks:?}");
    assert_eq!(
        (marks[0]["decision_id"].as_i64(), marks[0]["truth"].as_str()),
        (Some(1), Some("kiosk"))
    );
}

/// Off loopback the API needs TLS, and says so before anything starts; with a certificate it
/// speaks HTTPS only.
#[test]
fn off_loopback_the_api_needs_tls_and_serves_https_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = kiosk_with_api(tmp.path(), port, "");
    let viewer = token(&s, "wall", "read");
    let cfg = std::fs::read_to_string(s.config()).unwrap();
    let open = cfg.replace(&format!("127.0.0.1:{port}"), &format!("0.0.0.0:{port}"));
    std::fs::write(s.config(), &open).unwrap();
    let o = s.spawn(&["run"]).wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("is not a loopback address") && err.contains("api.tls_cert"), "{err}");

    // A test CA and a certificate it signed for 127.0.0.1.
    let (ca, cert, key) = common::certificate(tmp.path());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let tls = format!("tls_cert = {:?}\ntls_key = {:?}\n", cert, key);
    std::fs::write(s.config(), format!("{open}{tls}")).unwrap();
    let o = s.spawn(&["run"]).wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("can be read by other users") && err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    let _daemon = s.daemon(&[]);
    let pem = std::fs::read(&ca).unwrap();
    let roots = vec![ureq::tls::Certificate::from_pem(&pem).unwrap().to_owned()];
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(roots)))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let url = format!("https://127.0.0.1:{port}/api/status");
    wait_for("the API over HTTPS", Duration::from_secs(120), || match agent.get(&url).call() {
        Ok(_) => true,
        Err(e) => {
            eprintln!("{e}");
            false
        }
    });
    let (status, body) = call(&agent, "GET", &url, Some(&viewer), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cameras"][0]["name"], "replay");
    // Each camera's decisions, and those denied as presentation attacks (none here: this
    // kiosk runs without the live requirement).
    assert!(body["cameras"][0]["decisions"].is_u64(), "{body}");
    assert_eq!(body["cameras"][0]["presentation_attacks"], 0, "{body}");
    // Plain HTTP on the same port gets no answer.
    let plain = agent.get(&format!("http://127.0.0.1:{port}/api/status")).call();
    assert!(plain.is_err() || plain.unwrap().status() != 200);
}

/// chromedriver on a free port, killed when dropped.
struct Chromedriver {
    child: std::process::Child,
    port: u16,
}

impl Chromedriver {
    fn start() -> Chromedriver {
        let port = free_port();
        let child = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver (Debian packages chromium and chromium-driver; .ci/run installs them)");
        let up = || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        wait_for("chromedriver", Duration::from_secs(30), up);
        Chromedriver { child, port }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The operator page in headless Chromium: it lists the decisions of the replay run (each
/// journaled decision, by id), enrols the person by uploading their photo through the page's
/// form, and shows their grant arrive live (the event stream) at their next arrival.
#[test]
fn the_operator_page_lists_decisions_and_enrols_by_upload_in_chromium() {
    use fantoccini::Locator;
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = kiosk_with_api(tmp.path(), port, "");
    let ops = token(&s, "ops", "enrol");
    let _daemon = s.daemon(&[]);
    wait_for("two arrivals decided", Duration::from_secs(120), || entries(&s.journal()).len() >= 2);
    let driver = Chromedriver::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--window-size=1280,900"] }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let browser = fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a Chromium session");
        browser.goto(&format!("http://127.0.0.1:{port}/")).await.unwrap();
        browser.find(Locator::Id("token")).await.unwrap().send_keys(&ops).await.unwrap();
        browser.find(Locator::Id("signin")).await.unwrap().click().await.unwrap();
        let rows = "return Array.from(document.querySelectorAll('#decisions tr')).map(r => [Number(r.dataset.id), r.querySelector('.outcome').textContent, r.querySelector('.who').textContent])";
        // Every decision journaled so far is on the page, newest first.
        let mut shown = Vec::new();
        for _ in 0..100 {
            let journal = entries(&s.journal());
            let page: Vec<(i64, String, String)> =
                serde_json::from_value(browser.execute(rows, vec![]).await.unwrap()).unwrap();
            let ids: Vec<i64> = page.iter().map(|r| r.0).collect();
            let mut want: Vec<i64> = journal.iter().map(|e| e.id).collect();
            want.reverse();
            if ids.len() >= 2 && ids == want {
                shown = page;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(shown.len() >= 2, "the page never listed the journal's decisions");
        assert!(shown.iter().all(|r| r.1 == "denied" && r.2 == "unknown"), "{shown:?}");
        // The cameras' line: frames, decisions and presentation-attack denials.
        let status = "return document.getElementById('status').textContent";
        let status = browser.execute(status, vec![]).await.unwrap();
        let status = status.as_str().unwrap_or_default();
        assert!(status.contains("camera replay") && status.contains("denied as presentation attacks"), "{status}");

        // Enrol through the form: the photo goes up as the browser's file upload.
        browser.find(Locator::Id("enrol-name")).await.unwrap().send_keys("kiosk").await.unwrap();
        let photo = data("kiosk640.jpg").display().to_string();
        browser.find(Locator::Id("enrol-file")).await.unwrap().send_keys(&photo).await.unwrap();
        browser.find(Locator::Id("enrol-submit")).await.unwrap().click().await.unwrap();
        let result = "return document.getElementById('enrol-result').textContent";
        let mut said = String::new();
        for _ in 0..300 {
            said = browser.execute(result, vec![]).await.unwrap().as_str().unwrap().to_string();
            if said.starts_with("enrolled") || said.starts_with("not enrolled") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(said, "enrolled kiosk");
        let names = "return Array.from(document.querySelectorAll('#identities tr')).map(r => r.dataset.name)";
        let mut listed = serde_json::Value::Null;
        for _ in 0..50 {
            listed = browser.execute(names, vec![]).await.unwrap();
            if listed == serde_json::json!(["kiosk"]) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(listed, serde_json::json!(["kiosk"]));
        // The next arrival is granted, and the page shows it without a reload.
        let mut live = false;
        for _ in 0..600 {
            let page: Vec<(i64, String, String)> =
                serde_json::from_value(browser.execute(rows, vec![]).await.unwrap()).unwrap();
            if page.first().is_some_and(|r| r.1 == "granted" && r.2 == "kiosk") {
                live = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(live, "no grant of kiosk shown live");
        // #42, 6: times carry their date; "wrong?" asks what was wrong, then who it really was.
        let when = "return document.querySelector('#decisions td.when').textContent";
        let when = browser.execute(when, vec![]).await.unwrap();
        let year = humantime::format_rfc3339(std::time::SystemTime::now()).to_string()[..4].to_string();
        assert!(when.as_str().unwrap().contains(&year), "{when}");
        let first = browser.find(Locator::Css("#decisions tr:first-child button")).await.unwrap();
        let marked_id: i64 = browser
            .execute("return Number(document.querySelector('#decisions tr:first-child').dataset.id)", vec![])
            .await
            .unwrap()
            .as_i64()
            .unwrap();
        first.click().await.unwrap();
        browser.send_alert_text("let in, not enrolled").await.unwrap();
        browser.accept_alert().await.unwrap();
        browser.send_alert_text("visitor-b").await.unwrap();
        browser.accept_alert().await.unwrap();
        let mut marks = Vec::new();
        for _ in 0..50 {
            marks = Journal::open_existing(&s.journal()).unwrap().wrong_marks(0, i64::MAX).unwrap();
            if !marks.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(marks.len(), 1, "{marks:?}");
        assert_eq!(
            (marks[0].decision_id, marks[0].note.as_str(), marks[0].truth.as_deref()),
            (marked_id, "let in, not enrolled", Some("visitor-b"))
        );
        // At 412 px wide (a phone) nothing is wider than the screen: no sideways scrolling,
        // and the gallery is within the screen's width (it was off to the right).
        browser.set_window_size(412, 915).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let fit = "const g = document.getElementById('identities').closest('section').getBoundingClientRect(); \
                   return [document.documentElement.scrollWidth, document.documentElement.clientWidth, g.left, g.right]";
        let fit: Vec<f64> = serde_json::from_value(browser.execute(fit, vec![]).await.unwrap()).unwrap();
        println!("at 412 px: page {} px wide in a {} px viewport; gallery from {} to {} px", fit[0], fit[1], fit[2], fit[3]);
        assert!(fit[1] <= 420.0, "the window did not narrow: {fit:?}");
        assert!(fit[0] <= fit[1], "the page scrolls sideways: {fit:?}");
        assert!(fit[2] >= 0.0 && fit[3] <= fit[1], "the gallery is off screen: {fit:?}");
        browser.close().await.unwrap();
    });
    let cfg = edgeid::config::Config::load(&s.config()).unwrap();
    let enrolled = edgeid::app::gallery_list(&cfg, &s.gallery()).unwrap();
    assert_eq!(enrolled.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["kiosk"]);
}

/// #42, 9: `T=$(edgeid token add …)` captured two lines (the notice and the token); the token is
/// now the only line on stdout, the notice on stderr.
#[test]
fn regression_token_add_prints_only_the_token_on_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let s = kiosk_with_api(tmp.path(), free_port(), "");
    let o = s.spawn(&["token", "add", "ops", "--scope", "enrol"]).wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.trim().len() >= 32 && !out.contains(' '), "{out}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("shown only now"));
}
