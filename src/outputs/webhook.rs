//! The `webhook` output: the event POSTed as JSON. With a key, the body is signed with
//! HMAC-SHA256 in `X-Edgeid-Signature: sha256=<hex>` so the receiver can tell it came from a
//! device that holds the key; `X-Edgeid-Delivery: <device>-<record id>` names the record, the
//! same on every retry, so a receiver can drop a repeat (delivery is at least once).

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::event::{DeliveryError, Event, Sink};

pub struct Webhook {
    url: String,
    key: Option<Vec<u8>>,
    agent: ureq::Agent,
}

impl Webhook {
    /// `roots`: the CA certificates (DER) an https:// receiver's certificate must chain to,
    /// instead of the public ones (a receiver on a private CA).
    pub fn new(
        url: &str,
        key: Option<Vec<u8>>,
        timeout: Duration,
        roots: Option<Vec<Vec<u8>>>,
    ) -> Webhook {
        let mut config =
            ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false);
        if let Some(roots) = roots {
            let certs =
                roots.iter().map(|der| ureq::tls::Certificate::from_der(der).to_owned()).collect();
            let tls = ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)))
                .build();
            config = config.tls_config(tls);
        }
        let agent = config.build().new_agent();
        Webhook { url: url.to_string(), key, agent }
    }
}

/// `sha256=<hex>` of the body under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", crate::util::hex(&mac.finalize().into_bytes()))
}

impl Sink for Webhook {
    fn deliver(&mut self, event: &Event<'_>, body: &[u8]) -> Result<(), DeliveryError> {
        let d = &event.entry.decision;
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("X-Edgeid-Delivery", format!("{}-{}", d.device, event.entry.id));
        if let Some(key) = &self.key {
            request = request.header("X-Edgeid-Signature", signature(key, body));
        }
        let response =
            request.send(body).map_err(|e| DeliveryError(format!("POST {}: {e}", self.url)))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError(format!("POST {}: answered {status}", self.url)))
        }
    }
}

#[cfg(test)]
mod tests {
    /// RFC 4231 test case 2.
    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256() {
        assert_eq!(
            super::signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
