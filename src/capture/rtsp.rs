//! An RTSP camera's settings: its URL (shown without credentials or query), transport,
//! jitter-buffer latency and the file its password is read from. Opening one is the
//! `gstreamer` build's (src/capture/gst.rs).

use std::path::PathBuf;

use serde::Deserialize;

/// An RTSP camera. Its credentials are never part of the URL (which logs and metrics show):
/// the user is `username` and the password is read from `password_file`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtspCamera {
    pub name: String,
    /// `rtsp://host[:port]/path` (or `rtsps://`).
    pub url: String,
    #[serde(default)]
    pub transport: Transport,
    /// How long the jitter buffer waits for late packets, ms: the latency a frame gains.
    #[serde(default = "default_latency_ms")]
    pub latency_ms: u32,
    #[serde(default)]
    pub username: Option<String>,
    /// A file holding the password (one line), readable by the daemon's user only.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Frame size handed to the pipeline; 0 keeps the stream's own.
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
}

/// How RTP reaches the device: interleaved in the RTSP connection (through firewalls and NAT,
/// no loss) or as UDP datagrams (less delay on a clean network, lost packets are lost).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Tcp,
    Udp,
}

impl RtspCamera {
    /// What is wrong with the camera's settings, as the fix to make; `None` when sound.
    pub fn problem(&self) -> Option<String> {
        let Some(rest) =
            self.url.strip_prefix("rtsp://").or_else(|| self.url.strip_prefix("rtsps://"))
        else {
            return Some(format!("url = {:?} is not an rtsp:// or rtsps:// URL", self.url));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains('@') {
            return Some("url holds credentials, which would show in logs and metrics; remove them from the URL and set username and password_file".into());
        }
        if authority.is_empty() {
            return Some(format!("url = {:?} names no host", self.url));
        }
        if self.url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Some("url holds spaces or control characters; percent-encode them".into());
        }
        if self.username.is_some() != self.password_file.is_some() {
            return Some("set both username and password_file, or neither".into());
        }
        if self.latency_ms > 10_000 {
            return Some(format!("latency_ms = {}: give 0 to 10000", self.latency_ms));
        }
        if (self.width == 0) != (self.height == 0) {
            return Some("set both width and height, or neither (the stream's own size)".into());
        }
        None
    }

    /// The URL as logs, metrics and errors show it: without its query (where some cameras
    /// take a user and password) or fragment.
    pub fn shown_url(&self) -> &str {
        self.url.split(['?', '#']).next().unwrap_or("")
    }

    /// The password from `password_file`, refused where other users can read the file.
    pub fn password(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.password_file else { return Ok(None) };
        let shown = |why: String| format!("password_file {}: {why}", path.display());
        let password = crate::util::read_secret(path).map_err(shown)?;
        if password.is_empty() {
            return Err(shown("it is empty".into()));
        }
        Ok(Some(password))
    }
}

fn default_latency_ms() -> u32 {
    200
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera(toml_text: &str) -> RtspCamera {
        toml::from_str(&format!("name = \"door\"\n{toml_text}")).unwrap()
    }

    /// Each wrong setting of an RTSP camera is named with its fix; credentials in the URL
    /// are refused in every spelling (user only, user and password, an empty password).
    #[test]
    fn rtsp_settings_are_checked() {
        let ok = camera("url = \"rtsp://10.0.0.5:554/stream1\"");
        assert_eq!(ok.problem(), None);
        assert_eq!((ok.transport, ok.latency_ms), (Transport::Tcp, 200));
        for url in [
            "rtsp://admin:pw@10.0.0.5/s",
            "rtsp://admin@10.0.0.5/s",
            "rtsp://admin:@10.0.0.5",
            "rtsps://a%40b:c@cam.local:322/x?y",
        ] {
            let p = camera(&format!("url = {url:?}")).problem().unwrap();
            assert!(p.contains("url holds credentials"), "{url}: {p}");
            assert!(!p.contains("pw"), "{p}");
        }
        // An @ after the host (in a path or a query) is no credential; a query (where some
        // cameras take theirs) is never shown.
        let query = camera("url = \"rtsp://cam/live@main?user=a&password=b@c\"");
        assert_eq!(query.problem(), None);
        assert_eq!(query.shown_url(), "rtsp://cam/live@main");
        for (text, want) in [
            ("url = \"http://cam/s\"", "is not an rtsp:// or rtsps:// URL"),
            ("url = \"rtsp:///s\"", "names no host"),
            ("url = \"rtsp://cam/a b\"", "spaces or control characters"),
            ("url = \"rtsp://cam\"\nusername = \"u\"", "set both username and password_file"),
            ("url = \"rtsp://cam\"\nlatency_ms = 60000", "give 0 to 10000"),
            ("url = \"rtsp://cam\"\nwidth = 640", "set both width and height"),
        ] {
            let p = camera(text).problem().unwrap_or_default();
            assert!(p.contains(want), "{text}: {p}");
        }
        let e =
            toml::from_str::<RtspCamera>("name = \"d\"\nurl = \"rtsp://c\"\ntransport = \"sctp\"")
                .unwrap_err();
        assert!(e.to_string().contains("tcp"), "{e}");
    }
}
