//! How the BMC's certificate is trusted: a CA file, a pinned fingerprint, or (explicitly)
//! not at all. rustls with the ring provider: no OpenSSL at build or run time.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use super::RedfishError;
use crate::config::BmcConfig;

pub enum Trust {
    CaFile(PathBuf),
    Fingerprint([u8; 32]),
    Insecure,
}

impl Trust {
    pub fn from_config(bmc: &BmcConfig) -> Result<Trust, RedfishError> {
        match (&bmc.ca_file, &bmc.fingerprint, bmc.insecure) {
            (Some(f), None, false) => Ok(Trust::CaFile(f.clone())),
            (None, Some(fp), false) => parse_fingerprint(fp).map(Trust::Fingerprint),
            (None, None, true) => Ok(Trust::Insecure),
            // The configuration refuses these at load time; a Peer built otherwise (the
            // fence agent) must not fall back to trusting anything.
            _ => Err(RedfishError::Tls(
                "exactly one of ca_file, fingerprint or insecure = true is needed".into(),
            )),
        }
    }
}

/// "AB:CD:..." or "abcd...", optionally prefixed "sha256:"; 32 bytes.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], RedfishError> {
    let hex: String = text
        .trim()
        .trim_start_matches("sha256:")
        .trim_start_matches("SHA256:")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    let bad = || {
        RedfishError::Tls(format!(
            "fingerprint '{text}' is not a SHA-256 fingerprint (64 hex digits, colons \
             allowed; openssl x509 -noout -fingerprint -sha256)"
        ))
    };
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
            .map_err(|_| bad())?;
    }
    Ok(out)
}

/// ring rather than aws-lc-rs: it builds with a C compiler alone (aws-lc needs cmake),
/// and a BMC on the management network has no use for post-quantum key exchange yet.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn client_config(trust: &Trust) -> Result<ClientConfig, RedfishError> {
    let tls = |e: rustls::Error| RedfishError::Tls(e.to_string());
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls)?;
    Ok(match trust {
        Trust::CaFile(path) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| RedfishError::Tls(format!("ca_file {}: {e}", path.display())))?;
            for cert in certs {
                let cert = cert
                    .map_err(|e| RedfishError::Tls(format!("ca_file {}: {e}", path.display())))?;
                roots.add(cert).map_err(tls)?;
            }
            if roots.is_empty() {
                return Err(RedfishError::Tls(format!(
                    "ca_file {}: no certificate in it",
                    path.display()
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Fingerprint(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                fingerprint: Some(*fp),
                algorithms: provider().signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                fingerprint: None,
                algorithms: provider().signature_verification_algorithms,
            }))
            .with_no_client_auth(),
    })
}

/// True when the transport error is the TLS handshake refusing the certificate.
pub fn is_certificate_error(t: &ureq::Transport) -> bool {
    let text = format!("{t} {:?}", t.kind());
    text.contains("certificate") || text.contains("Certificate") || text.contains("fingerprint")
}

/// The server's own certificate must have the pinned SHA-256 (None: anything, for
/// `insecure = true`). The handshake signature is still checked against that
/// certificate's key, so the server must hold the key.
#[derive(Debug)]
struct Pinned {
    fingerprint: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(want) = self.fingerprint else {
            return Ok(ServerCertVerified::assertion());
        };
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if got == want {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate fingerprint {} is not the pinned one",
                got.iter()
                    .map(|b| format!("{b:02X}"))
                    .collect::<Vec<_>>()
                    .join(":")
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_read_with_or_without_colons_and_prefix() {
        let hex = "AB".repeat(32);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(parse_fingerprint(&hex).ok(), Some([0xAB; 32]));
        assert_eq!(parse_fingerprint(&colons).ok(), Some([0xAB; 32]));
        assert_eq!(
            parse_fingerprint(&format!("sha256:{hex}")).ok(),
            Some([0xAB; 32])
        );
        assert!(parse_fingerprint("AB:CD").is_err());
        assert!(parse_fingerprint(&"ZZ".repeat(32)).is_err());
    }
}
