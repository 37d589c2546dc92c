//! TLS settings read from files: whom a client trusts (the system's roots
//! plus a private CA's PEM file), the certificate it shows (a broker that
//! asks for one), and a server's certificate and key (the viewer over
//! HTTPS). Every problem is an error naming the file, the key that set it
//! and what to fix; nothing here panics on a broken certificate store.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A client certificate chain and its key, with the config keys naming them.
pub(crate) struct ClientIdentity<'a> {
    /// PEM certificate chain, leaf first.
    pub(crate) cert: (&'a Path, &'a str),
    /// PEM private key.
    pub(crate) key: (&'a Path, &'a str),
}

/// A client configuration trusting the system's roots and the PEM
/// certificates in `ca` (the file, and the config key that names it),
/// showing `identity` when given.
pub(crate) fn client_config(
    ca: Option<(&Path, &str)>,
    identity: Option<ClientIdentity<'_>>,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!("system certificate store: {error}");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some((path, key)) = ca {
        for cert in certificates(path, key)? {
            roots
                .add(cert)
                .with_context(|| format!("`{key}` {}: not a CA certificate", path.display()))?;
        }
    }
    if roots.is_empty() {
        anyhow::bail!(
            "no trusted certificate authority: the system has none (install ca-certificates) \
             and no CA file is configured"
        );
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let chain = certificates(identity.cert.0, identity.cert.1)?;
            builder
                .with_client_auth_cert(chain, private_key(identity.key.0, identity.key.1)?)
                .with_context(|| {
                    format!(
                        "`{}` {} does not match the certificate in `{}` {}",
                        identity.key.1,
                        identity.key.0.display(),
                        identity.cert.1,
                        identity.cert.0.display()
                    )
                })?
        }
    };
    Ok(Arc::new(config))
}

/// A server configuration presenting the PEM chain `cert` with its key.
pub(crate) fn server_config(
    cert: (&Path, &str),
    key: (&Path, &str),
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain = certificates(cert.0, cert.1)?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, private_key(key.0, key.1)?)
        .with_context(|| {
            format!(
                "`{}` {} does not match the certificate in `{}` {}",
                key.1,
                key.0.display(),
                cert.1,
                cert.0.display()
            )
        })?;
    Ok(Arc::new(config))
}

/// The PEM certificates in `path` (set by config key `key`); at least one.
fn certificates(path: &Path, key: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem =
        std::fs::read(path).with_context(|| format!("cannot read `{key}` {}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("`{key}` {}: not PEM certificates ({e})", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!(
            "`{key}` {}: no certificate in it (expected -----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(certs)
}

/// The PEM private key in `path` (set by config key `key`).
fn private_key(path: &Path, key: &str) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem =
        std::fs::read(path).with_context(|| format!("cannot read `{key}` {}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        anyhow::anyhow!(
            "`{key}` {}: no PEM private key in it ({e}); give the key that goes with the \
             certificate",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str, text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("peercam-tls-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn broken_files_are_errors_that_name_the_key_and_file() {
        let garbage = scratch("garbage.pem", "not a certificate\n");
        let missing = Path::new("/nonexistent/ca.pem");
        let e = client_config(Some((missing, "mqtt.ca_file")), None).unwrap_err();
        assert!(format!("{e:#}").contains("cannot read `mqtt.ca_file` /nonexistent/ca.pem"));
        let e = client_config(Some((&garbage, "mqtt.ca_file")), None).unwrap_err();
        assert!(format!("{e:#}").contains("no certificate in it"), "{e:#}");
        let bad_pem = scratch(
            "bad.pem",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        );
        let e = client_config(Some((&bad_pem, "mqtt.ca_file")), None).unwrap_err();
        assert!(format!("{e:#}").contains("mqtt.ca_file"), "{e:#}");
        let e = server_config((&garbage, "http.tls_cert"), (&garbage, "http.tls_key")).unwrap_err();
        assert!(format!("{e:#}").contains("`http.tls_cert`"), "{e:#}");
        for path in [garbage, bad_pem] {
            std::fs::remove_file(path).unwrap();
        }
    }

    #[test]
    fn trusts_the_system_roots_without_a_ca_file() {
        assert!(client_config(None, None).is_ok());
    }
}
