//! A throwaway certificate authority for the tests, made with the openssl
//! command line: its CA certificate and a server certificate for
//! 127.0.0.1 and localhost, as PEM files in a scratch directory.

use std::path::PathBuf;
use std::process::Command;

use super::TempDir;

/// A test CA and one server certificate it signed.
pub(crate) struct TestCa {
    /// The CA certificate (what clients trust).
    pub(crate) ca: PathBuf,
    /// The server's certificate for IP 127.0.0.1 and DNS localhost.
    pub(crate) cert: PathBuf,
    /// The server certificate's key.
    pub(crate) key: PathBuf,
    _dir: TempDir,
}

fn openssl(dir: &TempDir, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(&dir.0)
        .output()
        .expect("openssl is installed");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// openssl's arguments for a new P-256 key, unencrypted.
const P256: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

/// Issues `<name>.pem` and `<name>.key` in `dir`, signed by the CA there,
/// for subject `/CN=<cn>` with the extensions in `extensions`.
fn issue(dir: &TempDir, name: &str, cn: &str, extensions: &str) -> (PathBuf, PathBuf) {
    let (cert, key, csr, ext) = (
        format!("{name}.pem"),
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
    );
    let subject = format!("/CN={cn}");
    let mut request = vec!["req"];
    request.extend_from_slice(&P256);
    request.extend_from_slice(&["-keyout", &key, "-out", &csr, "-subj", &subject]);
    openssl(dir, &request);
    std::fs::write(dir.0.join(&ext), extensions).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
    (dir.0.join(cert), dir.0.join(key))
}

impl TestCa {
    /// Makes a CA (P-256, valid two days) and a server certificate.
    pub(crate) fn new() -> TestCa {
        let dir = TempDir::new("ca");
        let mut ca = vec!["req", "-x509"];
        ca.extend_from_slice(&P256);
        ca.extend_from_slice(&[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=peercam test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&dir, &ca);
        let (cert, key) = issue(
            &dir,
            "server",
            "localhost",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n\
             basicConstraints=CA:FALSE\n",
        );
        TestCa {
            ca: dir.0.join("ca.pem"),
            cert,
            key,
            _dir: dir,
        }
    }

    /// A client certificate (CN `name`) this CA signed, and its key.
    pub(crate) fn client(&self, name: &str) -> (PathBuf, PathBuf) {
        issue(&self._dir, name, name, "extendedKeyUsage=clientAuth\n")
    }

    /// Mosquitto configuration lines for a TLS listener on `port`.
    pub(crate) fn mosquitto_listener(&self, port: u16) -> String {
        format!(
            "listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
            self.ca.display(),
            self.cert.display(),
            self.key.display()
        )
    }
}
