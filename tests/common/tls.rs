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

impl TestCa {
    /// Makes a CA (P-256, valid two days) and a server certificate.
    pub(crate) fn new() -> TestCa {
        let dir = TempDir::new("ca");
        let p256 = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend_from_slice(&p256);
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
        let mut request = vec!["req"];
        request.extend_from_slice(&p256);
        request.extend_from_slice(&[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(&dir, &request);
        std::fs::write(
            dir.0.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n\
             basicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        TestCa {
            ca: dir.0.join("ca.pem"),
            cert: dir.0.join("server.pem"),
            key: dir.0.join("server.key"),
            _dir: dir,
        }
    }

    /// A client certificate (CN `name`) this CA signed, and its key.
    pub(crate) fn client(&self, name: &str) -> (PathBuf, PathBuf) {
        let dir = &self._dir;
        let (cert, key, csr) = (
            format!("{name}.pem"),
            format!("{name}.key"),
            format!("{name}.csr"),
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        std::fs::write(dir.0.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
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
                "client.ext",
            ],
        );
        (dir.0.join(cert), dir.0.join(key))
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
