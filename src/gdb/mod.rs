//! The gdb stub (QEMU's `-gdb tcp::PORT`, `-s`, `-S`): gdb's remote serial
//! protocol (GDB manual, appendix E) through the `gdbstub` crate's state
//! machine, driven from the machine's run loop.
//!
//! Threads: one accepts connections, one per connection reads bytes; both
//! hand what they got to the machine thread over a channel and raise an
//! attention flag, which the run loop looks at between slices (one atomic
//! load) — so a guest with no debugger, or a debugger with nothing armed,
//! runs at full speed, and Ctrl-C (byte 03h) stops it within a slice. An
//! idle guest is woken through the machine's wakers.
//!
//! States: the guest is stopped while `-S` waits, from the moment a
//! debugger connects (as QEMU does), at a breakpoint, watchpoint, finished
//! step or Ctrl-C; gdb's continue or step resumes it. While stopped the
//! loop waits here, still taking host input (Ctrl-a x, the window), and
//! guest time does not pass. Detach (`D`) resumes the guest with nothing
//! armed; kill (`k`) ends vx86. A connection that sends garbage or drops
//! mid-packet is closed: a running guest runs on with nothing armed, a
//! stopped one waits for the next connection. One debugger at a time: a
//! second one waits until the first leaves.

pub mod regs;
mod target;

use crate::cpu::debug::{DebugState, DebugStop, WatchKind};
use crate::machine::{Machine, RunExit};
use crossbeam_channel::{Receiver, Sender};
use gdbstub::conn::Connection;
use gdbstub::stub::state_machine::GdbStubStateMachine;
use gdbstub::stub::{DisconnectReason, GdbStub, SingleThreadStopReason};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the stopped machine waits for the debugger before it looks at
/// host input again.
const STOPPED_POLL: Duration = Duration::from_millis(20);
/// A debugger that stops reading its socket is dropped after this long.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections queued behind the current session; more are closed.
const MAX_WAITING: usize = 4;

/// Parses QEMU's `-gdb DEV` for a TCP server: `tcp::PORT` (loopback),
/// `tcp:HOST:PORT`, with QEMU's `,server`, `,nowait` (and `=on`/`=off`
/// spellings) accepted. Returns the address to listen on; `none` gives None.
pub fn parse_gdb_dev(spec: &str) -> Result<Option<String>, String> {
    if spec == "none" {
        return Ok(None);
    }
    let mut parts = spec.split(',');
    let addr = parts.next().unwrap_or_default();
    for p in parts {
        match p {
            "server" | "server=on" | "nowait" | "wait=off" | "ipv4" | "ipv4=on" => {}
            _ => return Err(format!("`{p}`: unknown option (tcp:[HOST]:PORT only)")),
        }
    }
    let Some(rest) = addr.strip_prefix("tcp:") else {
        return Err("only a TCP server is supported: tcp::PORT or tcp:HOST:PORT".into());
    };
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err("expected tcp::PORT or tcp:HOST:PORT".into());
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{port}`: not a port number"))?;
    let host = match host.trim_start_matches('[').trim_end_matches(']') {
        "" => "127.0.0.1",
        h => h,
    };
    Ok(Some(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }))
}

/// What the helper threads tell the machine thread.
enum Event {
    Connected(TcpStream),
    Data(u64, Vec<u8>),
    Closed(u64),
}

/// gdbstub's connection: replies are gathered and sent on flush.
pub struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
}

impl Connection for Conn {
    type Error = std::io::Error;

    fn write(&mut self, byte: u8) -> std::io::Result<()> {
        self.out.push(byte);
        Ok(())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.out.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = Write::write_all(&mut self.stream, &self.out);
        self.out.clear();
        r?;
        Write::flush(&mut self.stream)
    }
}

type Stub = GdbStubStateMachine<'static, Machine, Conn>;

/// The gdb server's state, owned by the machine (`Machine::gdb`).
pub struct GdbServer {
    events: Receiver<Event>,
    events_tx: Sender<Event>,
    attention: Arc<AtomicBool>,
    waker: Sender<()>,
    stub: Option<Stub>,
    /// The current connection (its id, and the socket to close).
    session: u64,
    socket: Option<TcpStream>,
    /// Debuggers that connected during a session: served in turn, as a
    /// listen backlog would queue them.
    waiting: std::collections::VecDeque<TcpStream>,
    /// The guest waits for the debugger.
    stopped: bool,
    stopped_since: Option<Instant>,
    /// Breakpoints and watchpoints of the session, armed in the CPU (with
    /// `step`) whenever the guest resumes.
    pub(crate) armed: DebugState,
    /// The session's register layout: x86-64 when it began in long mode.
    pub(crate) long: bool,
    /// Where the listener is (for the message with port 0).
    pub local_addr: Option<SocketAddr>,
}

impl GdbServer {
    /// A server on `listener` (None: `-S` alone, waiting for nothing but
    /// quit); `start_stopped` is `-S`.
    pub fn new(listener: Option<TcpListener>, start_stopped: bool) -> (Self, Receiver<()>) {
        let (events_tx, events) = crossbeam_channel::unbounded();
        let (waker, wake_rx) = crossbeam_channel::bounded(1);
        let attention = Arc::new(AtomicBool::new(false));
        let local_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        if let Some(l) = listener {
            let tx = events_tx.clone();
            let att = attention.clone();
            let wk = waker.clone();
            let _ = std::thread::Builder::new()
                .name("vx86-gdb-listen".into())
                .spawn(move || {
                    for s in l.incoming().flatten() {
                        if tx.send(Event::Connected(s)).is_err() {
                            break;
                        }
                        att.store(true, Ordering::Release);
                        let _ = wk.try_send(());
                    }
                });
        }
        let srv = GdbServer {
            events,
            events_tx,
            attention,
            waker,
            stub: None,
            session: 0,
            socket: None,
            waiting: Default::default(),
            stopped: start_stopped,
            stopped_since: start_stopped.then(Instant::now),
            armed: DebugState::default(),
            long: false,
            local_addr,
        };
        (srv, wake_rx)
    }
}

impl Machine {
    /// Attaches a gdb server: the run loop then serves it (`gdb::service`).
    pub fn attach_gdb(&mut self, listener: Option<TcpListener>, start_stopped: bool) {
        let (srv, wake) = GdbServer::new(listener, start_stopped);
        self.add_waker(wake);
        self.gdb = Some(Box::new(srv));
    }
}

/// Called by the run loop between slices while a server is attached: takes
/// the debugger's packets, reports stops, and waits while the guest is
/// stopped. `Some` ends the run (gdb's kill, or quit while stopped).
pub fn service(m: &mut Machine) -> Option<RunExit> {
    let g = m.gdb.as_ref()?;
    if !g.stopped
        && !g.attention.load(Ordering::Acquire)
        && m.cpu.debug.as_ref().is_none_or(|d| d.hit.is_none())
    {
        return None;
    }
    loop {
        if let Some(hit) = m.cpu.debug.as_mut().and_then(|d| d.hit.take()) {
            disarm(m);
            report_stop(m, hit);
        }
        let g = m.gdb.as_mut()?;
        g.attention.store(false, Ordering::Release);
        let events = g.events.clone();
        while let Ok(ev) = events.try_recv() {
            if let Some(r) = handle_event(m, ev) {
                return Some(r);
            }
        }
        let g = m.gdb.as_mut()?;
        if !g.stopped {
            if let Some(t) = g.stopped_since.take() {
                m.plat.clock.pause(t.elapsed());
                m.cpu.clock = m.plat.clock;
            }
            arm(m);
            return None;
        }
        if m.quit.load(Ordering::Relaxed) || crate::frontend::signal_quit() || m.poll_host() {
            return Some(RunExit::Quit);
        }
        if let Ok(ev) = events.recv_timeout(STOPPED_POLL) {
            if let Some(r) = handle_event(m, ev) {
                return Some(r);
            }
        }
    }
}

/// Installs the session's breakpoints, watchpoints and step in the CPU (or
/// nothing, so that the CPU runs at full speed).
fn arm(m: &mut Machine) {
    let Some(g) = m.gdb.as_mut() else {
        return;
    };
    let had_watch = m
        .cpu
        .debug
        .as_ref()
        .is_some_and(|d| !d.watchpoints.is_empty());
    let mut d = g.armed.clone();
    d.hit = None;
    g.armed.step = false;
    let watch = !d.watchpoints.is_empty();
    m.cpu.debug = (!d.is_idle()).then(|| Box::new(d));
    if had_watch || watch {
        // Watched pages lose (or regain) their fast TLB tags.
        m.cpu.tlb.flush_all();
    }
}

fn disarm(m: &mut Machine) {
    let had_watch = m
        .cpu
        .debug
        .as_ref()
        .is_some_and(|d| !d.watchpoints.is_empty());
    m.cpu.debug = None;
    if had_watch {
        m.cpu.tlb.flush_all();
    }
}

fn stop(m: &mut Machine) {
    if let Some(g) = m.gdb.as_mut() {
        if !g.stopped {
            g.stopped = true;
            g.stopped_since = Some(Instant::now());
        }
    }
    disarm(m);
}

/// Tells gdb why the CPU stopped.
fn report_stop(m: &mut Machine, hit: DebugStop) {
    let reason = match hit {
        DebugStop::Breakpoint { hw: false } => SingleThreadStopReason::SwBreak(()),
        DebugStop::Breakpoint { hw: true } => SingleThreadStopReason::HwBreak(()),
        DebugStop::Step => SingleThreadStopReason::DoneStep,
        DebugStop::Watch { kind, addr } => SingleThreadStopReason::Watch {
            tid: (),
            kind: match kind {
                WatchKind::Write => gdbstub::target::ext::breakpoints::WatchKind::Write,
                WatchKind::Read => gdbstub::target::ext::breakpoints::WatchKind::Read,
                WatchKind::Access => gdbstub::target::ext::breakpoints::WatchKind::ReadWrite,
            },
            addr,
        },
    };
    stop(m);
    let Some(stub) = m.gdb.as_mut().and_then(|g| g.stub.take()) else {
        return;
    };
    let next = match stub {
        GdbStubStateMachine::Running(s) => s.report_stop(m, reason),
        other => Ok(other),
    };
    settle(m, next);
}

/// One event from the helper threads; `Some` ends the run.
fn handle_event(m: &mut Machine, ev: Event) -> Option<RunExit> {
    match ev {
        Event::Connected(s) => {
            connect(m, s);
            None
        }
        Event::Closed(id) => {
            if m.gdb.as_ref().is_some_and(|g| g.session == id) {
                end_session(m, false);
            }
            None
        }
        Event::Data(id, bytes) => {
            if m.gdb.as_ref().is_none_or(|g| g.session != id) {
                return None;
            }
            for b in bytes {
                let stub = m.gdb.as_mut()?.stub.take()?;
                let next = match stub {
                    GdbStubStateMachine::Idle(s) => s.incoming_data(m, b),
                    GdbStubStateMachine::Running(s) => s.incoming_data(m, b),
                    other => Ok(other),
                };
                if let Some(r) = settle(m, next) {
                    return Some(r);
                }
            }
            flush_acks(m);
            None
        }
    }
}

/// Sends what the stub wrote without flushing: the `+` acknowledging a
/// packet that has no reply yet (continue, step).
fn flush_acks(m: &mut Machine) {
    let Some(g) = m.gdb.as_mut() else {
        return;
    };
    let r = match g.stub.as_mut() {
        Some(GdbStubStateMachine::Idle(s)) => s.borrow_conn().flush(),
        Some(GdbStubStateMachine::Running(s)) => s.borrow_conn().flush(),
        _ => Ok(()),
    };
    if r.is_err() {
        end_session(m, false);
    }
}

/// Takes the state machine's new state: a Ctrl-C stops the guest, Running
/// resumes it, a disconnect ends the session; an error (garbage, a dead
/// socket) drops the connection. `Some` ends the run.
fn settle(
    m: &mut Machine,
    next: Result<Stub, gdbstub::stub::GdbStubError<&'static str, std::io::Error>>,
) -> Option<RunExit> {
    let mut state = match next {
        Ok(s) => s,
        Err(_) => {
            end_session(m, false);
            return None;
        }
    };
    if let GdbStubStateMachine::CtrlCInterrupt(s) = state {
        stop(m);
        let reason = Some(SingleThreadStopReason::Signal(
            gdbstub::common::Signal::SIGINT,
        ));
        state = match s.interrupt_handled(m, reason) {
            Ok(s) => s,
            Err(_) => {
                end_session(m, false);
                return None;
            }
        };
    }
    match state {
        GdbStubStateMachine::Disconnected(s) => {
            let reason = s.get_reason();
            end_session(m, reason == DisconnectReason::Disconnect);
            if reason == DisconnectReason::Kill {
                return Some(RunExit::Quit);
            }
        }
        GdbStubStateMachine::Running(s) => {
            if let Some(g) = m.gdb.as_mut() {
                g.stopped = false;
                g.stub = Some(s.into());
            }
        }
        other => {
            if let Some(g) = m.gdb.as_mut() {
                g.stub = Some(other);
            }
        }
    }
    None
}

/// A debugger connected: the guest stops and a session begins (a second
/// debugger at the same time waits for the first to leave).
fn connect(m: &mut Machine, s: TcpStream) {
    let Some(g) = m.gdb.as_mut() else {
        return;
    };
    if g.stub.is_some() {
        if g.waiting.len() < MAX_WAITING {
            g.waiting.push_back(s);
        } else {
            let _ = s.shutdown(Shutdown::Both);
        }
        return;
    }
    let _ = s.set_nodelay(true);
    let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
    let (Ok(reader), Ok(writer)) = (s.try_clone(), s.try_clone()) else {
        return;
    };
    g.session += 1;
    let id = g.session;
    let (tx, att, wk) = (g.events_tx.clone(), g.attention.clone(), g.waker.clone());
    let spawned = std::thread::Builder::new()
        .name("vx86-gdb-conn".into())
        .spawn(move || read_loop(reader, id, tx, att, wk));
    if spawned.is_err() {
        return;
    }
    g.socket = Some(s);
    g.long = m.cpu.efer & crate::cpu::state::efer::LMA != 0;
    g.armed = DebugState::default();
    stop(m);
    let conn = Conn {
        stream: writer,
        out: Vec::new(),
    };
    let stub = GdbStub::<Machine, Conn>::new(conn).run_state_machine(m);
    match stub {
        Ok(st) => {
            if let Some(g) = m.gdb.as_mut() {
                g.stub = Some(st);
            }
        }
        Err(_) => end_session(m, false),
    }
}

/// Reads the debugger's bytes for the machine thread until the socket closes.
fn read_loop(
    mut s: TcpStream,
    id: u64,
    tx: Sender<Event>,
    attention: Arc<AtomicBool>,
    waker: Sender<()>,
) {
    let mut buf = [0u8; 4096];
    loop {
        let ev = match s.read(&mut buf) {
            Ok(0) | Err(_) => Event::Closed(id),
            Ok(n) => Event::Data(id, buf.get(..n).unwrap_or_default().to_vec()),
        };
        let closed = matches!(ev, Event::Closed(_));
        if tx.send(ev).is_err() {
            return;
        }
        attention.store(true, Ordering::Release);
        let _ = waker.try_send(());
        if closed {
            return;
        }
    }
}

/// Ends the session: nothing stays armed; `resume` (detach) lets the guest
/// run, otherwise a stopped guest waits for the next debugger.
fn end_session(m: &mut Machine, resume: bool) {
    disarm(m);
    if let Some(g) = m.gdb.as_mut() {
        g.stub = None;
        g.armed = DebugState::default();
        if let Some(s) = g.socket.take() {
            let _ = s.shutdown(Shutdown::Both);
        }
        if resume {
            g.stopped = false;
        }
        if let Some(next) = g.waiting.pop_front() {
            connect(m, next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_gdb_dev;

    #[test]
    fn gdb_device_spellings() {
        assert_eq!(
            parse_gdb_dev("tcp::1234"),
            Ok(Some("127.0.0.1:1234".into()))
        );
        assert_eq!(
            parse_gdb_dev("tcp:0.0.0.0:99,server,nowait"),
            Ok(Some("0.0.0.0:99".into()))
        );
        assert_eq!(parse_gdb_dev("tcp:[::1]:5"), Ok(Some("[::1]:5".into())));
        assert_eq!(parse_gdb_dev("none"), Ok(None));
        assert!(parse_gdb_dev("unix:/tmp/x").is_err());
        assert!(parse_gdb_dev("tcp::99999").is_err());
        assert!(parse_gdb_dev("tcp::1234,telnet").is_err());
        assert!(parse_gdb_dev("tcp:1234").is_err());
    }
}
