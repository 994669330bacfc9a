//! Where the monitors listen: QEMU's `-monitor`/`-qmp` backends
//! (`stdio`, `unix:PATH,server,nowait`, `tcp:HOST:PORT,server,nowait`), each
//! served on its own thread, one more thread per connected client. A client
//! that sends garbage gets an error line; one that disconnects, even in the
//! middle of a command, only ends its own thread: the machine never waits
//! for a client.

use super::{Command, Reply, Request};
use crossbeam_channel::Sender;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

/// Where a monitor listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Stdio,
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// A parsed `-monitor`/`-qmp` backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    pub endpoint: Endpoint,
    /// QEMU's `server` without `nowait`: the guest starts when the first
    /// client connects.
    pub wait: bool,
}

/// Parses a backend; `Ok(None)` for `none`. The error names the problem.
pub fn parse_backend(spec: &str) -> Result<Option<Backend>, String> {
    if spec == "none" {
        return Ok(None);
    }
    if spec == "stdio" {
        return Ok(Some(Backend {
            endpoint: Endpoint::Stdio,
            wait: false,
        }));
    }
    let mut parts = spec.split(',');
    let target = parts.next().unwrap_or("");
    let mut server = false;
    let mut wait = true;
    for p in parts {
        match p {
            "server" | "server=on" => server = true,
            "server=off" => server = false,
            "nowait" | "wait=off" => wait = false,
            "wait" | "wait=on" => wait = true,
            // Plain bytes either way: a telnet client works without negotiation.
            "telnet" | "telnet=on" | "telnet=off" => {}
            _ => {
                return Err(format!(
                    "unknown option `{p}` (server, nowait, wait=on|off)"
                ))
            }
        }
    }
    let endpoint = if let Some(path) = target.strip_prefix("unix:") {
        if path.is_empty() {
            return Err("unix: needs a socket path".into());
        }
        Endpoint::Unix(PathBuf::from(path))
    } else if let Some(hp) = target.strip_prefix("tcp:") {
        let (host, port) = hp
            .rsplit_once(':')
            .ok_or("tcp: needs HOST:PORT (HOST may be empty: loopback)")?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("tcp: port `{port}` is not a number"))?;
        // Loopback unless an address is given: a monitor controls the machine.
        let host = match host.trim_start_matches('[').trim_end_matches(']') {
            "" | "localhost" => "127.0.0.1",
            h => h,
        };
        let ip: std::net::IpAddr = host
            .parse()
            .map_err(|_| format!("tcp: `{host}` is not an IP address"))?;
        Endpoint::Tcp(SocketAddr::new(ip, port))
    } else {
        return Err(
            "use stdio, unix:PATH,server,nowait, tcp:HOST:PORT,server,nowait or none".into(),
        );
    };
    if !server {
        return Err("vx86 only listens: add `,server,nowait`".into());
    }
    Ok(Some(Backend { endpoint, wait }))
}

/// Which protocol a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Hmp,
    Qmp,
}

/// A listening socket; a unix socket's file is removed when this is dropped.
pub struct Listener {
    path: Option<PathBuf>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Sends one command to the machine and waits for the answer; `None` when
/// the machine has stopped running.
pub fn ask(tx: &Sender<Request>, cmd: Command) -> Option<Reply> {
    let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
    tx.send(Request {
        cmd,
        reply: reply_tx,
    })
    .ok()?;
    reply_rx.recv().ok()
}

/// Starts serving `backend`; `connected` gets one message when the first
/// client connects (stdio: at once).
pub fn start(
    backend: &Backend,
    proto: Protocol,
    tx: Sender<Request>,
    connected: Sender<()>,
) -> std::io::Result<Listener> {
    match &backend.endpoint {
        Endpoint::Stdio => {
            let _ = connected.send(());
            std::thread::Builder::new()
                .name("vx86-monitor-stdio".into())
                .spawn(move || {
                    let out = std::io::stdout();
                    serve(proto, std::io::stdin().lock(), out, &tx);
                })?;
            Ok(Listener { path: None })
        }
        Endpoint::Tcp(addr) => {
            let l = TcpListener::bind(addr)?;
            std::thread::Builder::new()
                .name("vx86-monitor".into())
                .spawn(move || {
                    for s in l.incoming().flatten() {
                        let _ = connected.try_send(());
                        let _ = s.set_nodelay(true);
                        let Ok(r) = s.try_clone() else { continue };
                        spawn_client(proto, r, s, tx.clone());
                    }
                })?;
            Ok(Listener { path: None })
        }
        #[cfg(unix)]
        Endpoint::Unix(path) => {
            use std::os::unix::fs::FileTypeExt;
            // As QEMU: a stale socket from an earlier run is replaced; any
            // other file is not.
            if let Ok(md) = std::fs::symlink_metadata(path) {
                if md.file_type().is_socket() {
                    let _ = std::fs::remove_file(path);
                }
            }
            let l = std::os::unix::net::UnixListener::bind(path)?;
            std::thread::Builder::new()
                .name("vx86-monitor".into())
                .spawn(move || {
                    for s in l.incoming().flatten() {
                        let _ = connected.try_send(());
                        let Ok(r) = s.try_clone() else { continue };
                        spawn_client(proto, r, s, tx.clone());
                    }
                })?;
            Ok(Listener {
                path: Some(path.clone()),
            })
        }
        #[cfg(not(unix))]
        Endpoint::Unix(_) => Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "unix sockets are not available on this host; use tcp:HOST:PORT,server,nowait",
        )),
    }
}

fn spawn_client<R, W>(proto: Protocol, r: R, w: W, tx: Sender<Request>)
where
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    let _ = std::thread::Builder::new()
        .name("vx86-monitor-client".into())
        .spawn(move || serve(proto, r, w, &tx));
}

fn serve<R: Read, W: Write>(proto: Protocol, r: R, w: W, tx: &Sender<Request>) {
    match proto {
        Protocol::Hmp => serve_hmp(r, w, tx),
        Protocol::Qmp => super::qmp::serve(r, w, tx),
    }
}

/// The HMP prompt, as QEMU's.
pub const PROMPT: &str = "(qemu) ";
/// Longest command line taken.
const MAX_LINE: usize = 4096;

/// HMP text on the wire: QEMU's monitor ends lines with `\r\n`.
pub fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// The banner a new HMP client sees.
pub fn banner() -> String {
    format!(
        "vx86 {} monitor - type 'help' for more information\r\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// One HMP client: a banner and a prompt, then one command per line.
fn serve_hmp<R: Read, W: Write>(r: R, mut w: W, tx: &Sender<Request>) {
    if write!(w, "{}{PROMPT}", banner()).is_err() || w.flush().is_err() {
        return;
    }
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = match r
            .by_ref()
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let text = if n > MAX_LINE && buf.last() != Some(&b'\n') {
            // Skip the rest of the overlong line.
            let mut rest = Vec::new();
            if r.read_until(b'\n', &mut rest).is_err() {
                return;
            }
            format!("error: command line longer than {MAX_LINE} bytes\n")
        } else {
            let line = String::from_utf8_lossy(&buf);
            match ask(tx, Command::Line(line.into_owned())) {
                Some(reply) => {
                    let ok =
                        write!(w, "{}{PROMPT}", crlf(&reply.text)).is_ok() && w.flush().is_ok();
                    if let Some(a) = reply.ack {
                        let _ = a.send(());
                    }
                    if !ok {
                        return;
                    }
                    continue;
                }
                None => return,
            }
        };
        if write!(w, "{}{PROMPT}", crlf(&text)).is_err() || w.flush().is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_parse_as_qemu_spells_them() {
        assert_eq!(parse_backend("none").unwrap(), None);
        assert_eq!(
            parse_backend("stdio").unwrap().unwrap().endpoint,
            Endpoint::Stdio
        );
        let b = parse_backend("unix:/tmp/m.sock,server,nowait")
            .unwrap()
            .unwrap();
        assert_eq!(b.endpoint, Endpoint::Unix("/tmp/m.sock".into()));
        assert!(!b.wait);
        let b = parse_backend("tcp::4444,server=on,wait=off")
            .unwrap()
            .unwrap();
        assert_eq!(b.endpoint, Endpoint::Tcp("127.0.0.1:4444".parse().unwrap()));
        let b = parse_backend("tcp:0.0.0.0:4444,server").unwrap().unwrap();
        assert_eq!(b.endpoint, Endpoint::Tcp("0.0.0.0:4444".parse().unwrap()));
        assert!(b.wait);
        assert!(parse_backend("tcp::4444").unwrap_err().contains("server"));
        assert!(parse_backend("vc").is_err());
        assert!(parse_backend("tcp::x,server").is_err());
        assert!(parse_backend("unix:/x,server,bogus").is_err());
    }
}
