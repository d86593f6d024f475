//! The rustls client configuration for `mqtts://` brokers, with ring as the crypto provider.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::{BridgeError, TlsFiles};

/// Builds the client configuration: the CA file's certificates as the only roots, and the client
/// certificate when one is configured.
pub(crate) fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, BridgeError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs("CA", &files.ca_file)? {
        roots.add(cert).map_err(|error| BridgeError::TlsFile {
            role: "CA",
            path: files.ca_file.clone(),
            reason: error.to_string(),
        })?;
    }

    // ring is the one crypto provider of Alicia. rustls 0.23.48 deprecates this function only
    // because ring has no post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_root_certificates(roots);

    let config = match &files.client {
        None => builder.with_no_client_auth(),
        Some(client) => {
            let chain = read_certs("client certificate", &client.cert_file)?;
            let key = PrivateKeyDer::from_pem_file(&client.key_file).map_err(|error| {
                let reason = match error {
                    pem::Error::NoItemsFound => {
                        "it contains no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block"
                            .to_owned()
                    }
                    other => other.to_string(),
                };
                BridgeError::TlsFile {
                    role: "client key",
                    path: client.key_file.clone(),
                    reason,
                }
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(tls_error)?
        }
    };
    Ok(Arc::new(config))
}

/// Reads every certificate of a PEM file, failing when it contains none.
fn read_certs(
    role: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, BridgeError> {
    let file_error = |reason: String| BridgeError::TlsFile {
        role,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|error| file_error(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| file_error(error.to_string()))?;
    if certs.is_empty() {
        return Err(file_error("it contains no CERTIFICATE block".to_owned()));
    }
    Ok(certs)
}

fn tls_error(error: rustls::Error) -> BridgeError {
    BridgeError::Tls {
        reason: error.to_string(),
    }
}
