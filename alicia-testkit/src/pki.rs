//! Certificates for TLS tests, generated at test time in a temporary directory.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The names of the default server certificate: the loopback address and its host name.
pub const SERVER_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

/// An error generating or writing test certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen failed to generate a key or to sign a certificate.
    #[error("generating the test {what} failed: {source}")]
    Generate {
        /// The key or certificate involved, such as `server certificate`.
        what: &'static str,
        /// rcgen's error.
        source: rcgen::Error,
    },

    /// Creating the directory or writing a file failed.
    #[error("writing the test certificate file {path} failed: {source}")]
    Write {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// A test CA with a server and a client certificate that it signed, as PEM files in a temporary
/// directory that is deleted when this value is dropped.
///
/// Every call generates new keys, so two values have unrelated CAs: a client that trusts one
/// rejects the server certificate of the other. The CA's private key is never written to disk.
/// The files are:
///
/// | file | content |
/// |---|---|
/// | `ca.pem` | the CA certificate |
/// | `server.pem`, `server.key` | the server certificate and its key |
/// | `client.pem`, `client.key` | the client certificate and its key |
///
/// Key files have mode 0600 on Unix.
#[derive(Debug)]
pub struct TestPki {
    dir: tempfile::TempDir,
}

impl TestPki {
    /// Generates a CA, a server certificate for [`SERVER_NAMES`] and a client certificate.
    pub fn generate() -> Result<Self, PkiError> {
        Self::generate_for(&SERVER_NAMES)
    }

    /// Generates a CA, a server certificate whose subject alternative names are `server_names`,
    /// and a client certificate. A name that parses as an IP address becomes an IP address SAN,
    /// any other a DNS name SAN.
    pub fn generate_for(server_names: &[&str]) -> Result<Self, PkiError> {
        let dir = tempfile::Builder::new()
            .prefix("alicia-pki-")
            .tempdir()
            .map_err(|source| PkiError::Write {
                path: std::env::temp_dir(),
                source,
            })?;
        let pki = Self { dir };

        let ca_key = generate_key("CA key")?;
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = distinguished_name("Alicia test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(|source| PkiError::Generate {
                what: "CA certificate",
                source,
            })?;
        write_file(&pki.ca_file(), &ca_cert.pem())?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_names: Vec<String> = server_names.iter().map(|name| name.to_string()).collect();
        let common_name = server_names.first().cloned().unwrap_or_default();
        pki.write_leaf(
            &issuer,
            "server certificate",
            server_names,
            &common_name,
            ExtendedKeyUsagePurpose::ServerAuth,
            (&pki.server_cert_file(), &pki.server_key_file()),
        )?;
        pki.write_leaf(
            &issuer,
            "client certificate",
            Vec::new(),
            "alicia-test-client",
            ExtendedKeyUsagePurpose::ClientAuth,
            (&pki.client_cert_file(), &pki.client_key_file()),
        )?;

        Ok(pki)
    }

    /// Returns the directory that contains the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Returns the path of the CA certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Returns the path of the server certificate, signed by the CA.
    pub fn server_cert_file(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// Returns the path of the server certificate's private key (PKCS#8).
    pub fn server_key_file(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// Returns the path of the client certificate, signed by the CA.
    pub fn client_cert_file(&self) -> PathBuf {
        self.dir.path().join("client.pem")
    }

    /// Returns the path of the client certificate's private key (PKCS#8).
    pub fn client_key_file(&self) -> PathBuf {
        self.dir.path().join("client.key")
    }

    /// Generates a key and a certificate signed by `issuer`, and writes both.
    fn write_leaf(
        &self,
        issuer: &Issuer<'_, KeyPair>,
        what: &'static str,
        subject_alt_names: Vec<String>,
        common_name: &str,
        usage: ExtendedKeyUsagePurpose,
        (cert_file, key_file): (&Path, &Path),
    ) -> Result<(), PkiError> {
        let generate_error = |source| PkiError::Generate { what, source };

        let key = generate_key(what)?;
        let mut params = CertificateParams::new(subject_alt_names).map_err(generate_error)?;
        params.distinguished_name = distinguished_name(common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, issuer).map_err(generate_error)?;

        write_file(cert_file, &cert.pem())?;
        write_private_file(key_file, &key.serialize_pem())
    }
}

fn generate_key(what: &'static str) -> Result<KeyPair, PkiError> {
    KeyPair::generate().map_err(|source| PkiError::Generate { what, source })
}

fn distinguished_name(common_name: &str) -> rcgen::DistinguishedName {
    let mut name = rcgen::DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

fn write_file(path: &Path, contents: &str) -> Result<(), PkiError> {
    fs::write(path, contents).map_err(|source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a private key readable by its owner only: the mode is set when the file is created, so
/// the key is never readable by others, not even briefly.
fn write_private_file(path: &Path, contents: &str) -> Result<(), PkiError> {
    let write_error = |source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    };

    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(write_error)?;
    file.write_all(contents.as_bytes()).map_err(write_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pki_writes_every_file() {
        let pki = TestPki::generate().expect("test certificates generate");
        for path in [
            pki.ca_file(),
            pki.server_cert_file(),
            pki.server_key_file(),
            pki.client_cert_file(),
            pki.client_key_file(),
        ] {
            let text = fs::read_to_string(&path).expect("file is readable");
            assert!(text.starts_with("-----BEGIN "), "{path:?} is not PEM");
        }
    }

    #[cfg(unix)]
    #[test]
    fn pki_key_files_are_private() {
        use std::os::unix::fs::PermissionsExt;

        let pki = TestPki::generate().expect("test certificates generate");
        for path in [pki.server_key_file(), pki.client_key_file()] {
            let mode = fs::metadata(&path)
                .expect("key file exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{path:?}");
        }
    }

    #[test]
    fn pki_writes_no_ca_key() {
        let pki = TestPki::generate().expect("test certificates generate");
        let mut names: Vec<String> = fs::read_dir(pki.dir())
            .expect("directory is readable")
            .map(|entry| entry.expect("entry is readable").file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "ca.pem",
                "client.key",
                "client.pem",
                "server.key",
                "server.pem"
            ]
        );
    }
}
