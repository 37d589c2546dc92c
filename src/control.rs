//! The local control socket: a Unix stream socket owned by the service
//! user, so other integrations on the board (a second button, a home
//! automation bridge) can ring the doorbell with `peercam ring`. One
//! command per connection, one line each way.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::signal::manager::Command;

/// How long one client may take to send its command.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest command line read.
const MAX_LINE: u64 = 256;

/// Parses one command line; the error is the reply to send.
pub(crate) fn parse_command(line: &str) -> Result<Command, String> {
    match line.trim() {
        "ring" => Ok(Command::Ring),
        "" => Err("error: empty command; known commands: ring".into()),
        other => Err(format!(
            "error: unknown command `{other}`; known commands: ring"
        )),
    }
}

/// Serves the socket at `path` on its own thread, sending each command to
/// `commands`. The socket is made readable and writable by its owner and
/// group only.
pub(crate) fn start(path: &Path, commands: async_channel::Sender<Command>) -> anyhow::Result<()> {
    if path.exists() {
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot create the control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    let path = path.to_owned();
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || serve(listener, path, commands))
        .context("cannot start the control thread")?;
    Ok(())
}

fn serve(listener: UnixListener, path: PathBuf, commands: async_channel::Sender<Command>) {
    for stream in listener.incoming() {
        if commands.is_closed() {
            break;
        }
        match stream {
            Ok(stream) => {
                if let Err(e) = answer(stream, &commands) {
                    tracing::debug!("control client: {e}");
                }
            }
            Err(e) => {
                tracing::warn!("control socket {}: {e}", path.display());
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

fn answer(stream: UnixStream, commands: &async_channel::Sender<Command>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_LINE)).read_line(&mut line)?;
    let reply = match parse_command(&line) {
        Ok(command) => match commands.try_send(command) {
            Ok(()) => "ok".to_owned(),
            Err(_) => "error: the daemon is busy or stopping; try again".to_owned(),
        },
        Err(reply) => reply,
    };
    (&stream).write_all(format!("{reply}\n").as_bytes())
}

/// Sends `command` to the daemon listening at `path`; an error says what
/// the daemon refused or what to check.
pub(crate) fn send(path: &Path, command: &str) -> anyhow::Result<()> {
    let mut stream = UnixStream::connect(path).with_context(|| {
        format!(
            "cannot reach the daemon at {}: is peercam running, and is this user \
             the service user or in its group?",
            path.display()
        )
    })?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.write_all(format!("{command}\n").as_bytes())?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .take(MAX_LINE)
        .read_line(&mut reply)
        .context("the daemon did not answer")?;
    match reply.trim() {
        "ok" => Ok(()),
        "" => bail!("the daemon closed the connection without answering"),
        refused => bail!("{}", refused.trim_start_matches("error: ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_unknown_ones_are_named() {
        assert_eq!(parse_command("ring\n"), Ok(Command::Ring));
        assert_eq!(parse_command("  ring  "), Ok(Command::Ring));
        let error = parse_command("open-door\n").unwrap_err();
        assert!(
            error.contains("`open-door`") && error.contains("ring"),
            "{error}"
        );
        assert!(parse_command("\n").is_err());
    }

    #[test]
    fn a_ring_crosses_the_socket() {
        let dir = std::env::temp_dir().join(format!("peercam-control-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.sock");
        let (tx, rx) = async_channel::bounded(4);
        start(&path, tx).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        send(&path, "ring").unwrap();
        assert_eq!(rx.recv_blocking(), Ok(Command::Ring));
        let refused = send(&path, "explode").unwrap_err().to_string();
        assert!(refused.contains("unknown command `explode`"), "{refused}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
