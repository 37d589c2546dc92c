//! What the Rust end-to-end tests share: free ports, scratch directories and
//! the daemon binary started with a config, killed (log printed on failure)
//! when dropped.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub(crate) mod lab;
pub(crate) mod seal;
pub(crate) mod tls;
pub(crate) mod viewer;

/// A TCP port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scratch directory, removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    /// A fresh directory under the system's temp dir, unique to `tag`.
    pub(crate) fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "peercam-test-{}-{tag}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The daemon under test; killed when dropped, its log printed if the test failed.
/// Its log goes to a file, so a test can read it while the daemon runs and
/// a chatty daemon never blocks on a full pipe.
pub(crate) struct Daemon {
    pub(crate) child: Child,
    pub(crate) dir: TempDir,
}

/// The daemon's log file, in its scratch directory.
const DAEMON_LOG: &str = "daemon.log";

impl Daemon {
    /// Runs `peercam run` on `config` (TOML text) with extra environment `env`.
    pub(crate) fn start(config: &str, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_in(&[], config, env)
    }

    /// [`Daemon::start`] under the command `wrapper` (e.g. `ip netns exec NAME`).
    pub(crate) fn start_in(wrapper: &[&str], config: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = TempDir::new("daemon");
        let path = dir.0.join("peercam.toml");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.0.join(DAEMON_LOG)).unwrap();
        let program = env!("CARGO_BIN_EXE_peercam");
        let mut command = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(program);
                command
            }
            None => Command::new(program),
        };
        let child = command
            .args(["run", "-c"])
            .arg(&path)
            .env("RUST_LOG", "info,turn_client_proto=warn,stun_proto=warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon { child, dir }
    }
}

impl Daemon {
    /// The daemon's exit status, once it exits within `timeout`.
    pub(crate) fn wait_exit(
        &mut self,
        timeout: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }

    /// Stops the daemon (SIGTERM, then waits) and returns its log.
    pub(crate) fn stop_and_log(&mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        self.log()
    }

    /// The file the daemon logs to (its stderr).
    pub(crate) fn log_file(&self) -> PathBuf {
        self.dir.0.join(DAEMON_LOG)
    }

    /// What the daemon has logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// The daemon's resident memory now, in KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- daemon log ---\n{}", self.log());
        }
    }
}

/// A real Mosquitto broker on `port` (loopback, anonymous); killed when dropped.
pub(crate) struct Mosquitto {
    child: Child,
    _dir: TempDir,
}

impl Mosquitto {
    /// Starts Mosquitto listening on 127.0.0.1:`port`.
    pub(crate) fn start(port: u16) -> Mosquitto {
        Mosquitto::start_on("127.0.0.1", port)
    }

    /// Starts Mosquitto listening on `ip`:`port`.
    pub(crate) fn start_on(ip: &str, port: u16) -> Mosquitto {
        Mosquitto::start_with(ip, port, "")
    }

    /// Starts Mosquitto listening on `ip`:`port`, plus the listeners in
    /// `extra` (its configuration lines, e.g. a TLS listener), without
    /// Nagle's delay, as the README advises.
    pub(crate) fn start_with(ip: &str, port: u16, extra: &str) -> Mosquitto {
        let dir = TempDir::new("mosquitto");
        let conf = dir.0.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "user root\npersistence false\nper_listener_settings false\n\
                 set_tcp_nodelay true\nallow_anonymous true\nlistener {port} {ip}\n{extra}\n"
            ),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed (dev/setup --test)");
        let broker = Mosquitto { child, _dir: dir };
        let listening = (0..250).any(|_| {
            let up = std::net::TcpStream::connect((ip, port)).is_ok();
            if !up {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            up
        });
        assert!(
            listening,
            "mosquitto did not listen on {ip}:{port} within 5 s"
        );
        broker
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
