//! The `peercam` command line: parses arguments and runs the command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::Config;
use clap::{Parser, Subcommand};

/// Camera to browser over WebRTC, signaled over MQTT.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the camera daemon.
    Run {
        /// Configuration file.
        #[arg(short, long, default_value = "/etc/peercam/peercam.toml")]
        config: PathBuf,
    },
    /// Check that this machine has what the configuration needs, with fixes.
    Check {
        /// Configuration file.
        #[arg(short, long, default_value = "/etc/peercam/peercam.toml")]
        config: PathBuf,
    },
    /// How this network treats WebRTC (RFC 5780 against the configured STUN
    /// server, TURN allocations), and which viewers need a relay.
    Nat {
        /// Configuration file naming the STUN/TURN servers.
        #[arg(short, long, default_value = "/etc/peercam/peercam.toml")]
        config: PathBuf,
    },
    /// Pair a viewer: store a new key for it and print the pairing link and
    /// its QR code. Sealed mode then lets only paired viewers call.
    Pair {
        /// The viewer's name, shown as the talk-floor holder (e.g. "alice-phone").
        name: String,
        /// Configuration file naming the key file, broker and viewer page.
        #[arg(short, long, default_value = "/etc/peercam/peercam.toml")]
        config: PathBuf,
        /// Also write the QR code as a PNG image here.
        #[arg(long)]
        png: Option<PathBuf>,
        /// Also write the QR code as an SVG image here.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// List the paired viewers, or revoke one.
    Keys {
        /// Configuration file naming the key file.
        #[arg(short, long, default_value = "/etc/peercam/peercam.toml")]
        config: PathBuf,
        #[command(subcommand)]
        action: Option<KeysAction>,
    },
    /// Ring the doorbell of the running daemon (through its control socket).
    Ring {
        /// Configuration file naming the control socket.
        #[arg(short, long, default_value = "/etc/peercam/peercam.toml")]
        config: PathBuf,
        /// The control socket, instead of the one the configuration names.
        #[arg(long)]
        socket: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Revoke a paired viewer at once: a running camera ends its calls.
    Revoke {
        /// The name it was paired under.
        name: String,
    },
}

/// Runs the command line; the process exits with the returned code.
pub fn main() -> ExitCode {
    abort_on_panic();
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "info,str0m=warn,rumqttd=off,turn_client_proto=warn,stun_proto=warn".into()
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // Under systemd the journal stamps every line itself.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        logs.without_time().init();
    } else {
        logs.init();
    }
    match cli.command {
        Command::Run { config } => {
            let config = match Config::load(&config) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            match crate::daemon::run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Ring { config, socket } => {
            let socket = match socket {
                Some(socket) => socket,
                None => match Config::load(&config) {
                    Ok(loaded) if loaded.doorbell.control_socket.as_os_str().is_empty() => {
                        eprintln!(
                            "error: {}: `doorbell.control_socket` is empty, so the daemon \
                             listens for no commands",
                            config.display()
                        );
                        return ExitCode::from(2);
                    }
                    Ok(loaded) => loaded.doorbell.control_socket,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                },
            };
            match crate::control::send(&socket, "ring") {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Pair {
            name,
            config,
            png,
            svg,
        } => with_config(&config, |config| {
            let files = crate::pair::QrFiles {
                png: png.as_deref(),
                svg: svg.as_deref(),
            };
            crate::pair::pair(config, &name, files)
        }),
        Command::Keys { config, action } => with_config(&config, |config| match &action {
            None => crate::pair::list(config),
            Some(KeysAction::Revoke { name }) => crate::pair::revoke(config, name),
        }),
        Command::Nat { config } => match crate::nat::run(&config) {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Check { config } => {
            let findings = crate::check::run(&config);
            print!("{}", crate::check::render(&config, &findings));
            if crate::check::failed(&findings) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

/// Loads the configuration at `path` and prints what `command` makes of
/// it: exit 2 for a bad configuration, 1 when the command fails.
fn with_config(path: &Path, command: impl FnOnce(&Config) -> anyhow::Result<String>) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match command(&config) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Makes a panic on any thread end the process, in debug builds too (a
/// release build aborts anyway): a panicking session task would otherwise
/// be swallowed by the executor, never report its end, and hold its viewer
/// slot forever. The service manager restarts the process.
fn abort_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
}
