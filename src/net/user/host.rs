//! The host side of user networking: one thread that owns every host socket
//! and waits on them with mio (epoll, kqueue or IOCP, whichever the OS has).
//!
//! The machine thread sends [`Command`]s (batched, one wake-up per batch) and
//! takes [`Event`]s in `UserNet::poll`. The thread sleeps in `mio::Poll` until
//! a socket is ready or the machine wakes it: it never spins. After pushing
//! events it raises [`Signal`]: an atomic flag (`host_pending`, one load for
//! the machine) and a one-slot channel a halted machine can block on.
//!
//! Bounds: each TCP connection reads at most [`HOST_READ_CREDIT`] bytes ahead
//! of what the machine has passed on to the guest (credit comes back with
//! [`Command::Credit`]), and holds what the guest sent until the host socket
//! takes it (the machine keeps at most `TO_HOST_INFLIGHT` there). Datagrams
//! from the host waiting for the machine are capped at [`UDP_QUEUE`]; past
//! that they are read and dropped, as a full router queue would.

use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Identifies a host socket on both threads.
pub type ConnId = u64;

/// Bytes a host TCP connection may read ahead of the guest.
pub const HOST_READ_CREDIT: usize = 256 * 1024;
/// Datagrams from the host not yet taken by the machine.
pub const UDP_QUEUE: usize = 512;

const WAKER: Token = Token(usize::MAX);
const READ_CHUNK: usize = 64 * 1024;

/// From the machine thread to the host thread.
pub enum Command {
    /// Open a TCP connection; answered by `Connected` or `ConnectFailed`.
    Connect { id: ConnId, addr: SocketAddr },
    /// Bytes the guest sent on a TCP connection; answered by `Written`.
    Send { id: ConnId, data: Vec<u8> },
    /// The guest sent FIN: shut down the host write side once all is written.
    ShutdownWrite { id: ConnId },
    /// Forget a socket (TCP, or a UDP mapping) and close it.
    Close { id: ConnId },
    /// The machine passed on this many bytes read from a TCP connection.
    Credit { id: ConnId, bytes: usize },
    /// A UDP socket connected to `peer` (one NAT mapping).
    UdpOpen { id: ConnId, peer: SocketAddr },
    /// A datagram on a mapping's socket, or (with `to`) on a forward's socket.
    UdpSend {
        id: ConnId,
        to: Option<SocketAddr>,
        data: Vec<u8>,
    },
}

/// From the host thread to the machine thread.
#[derive(Debug)]
pub enum Event {
    Connected {
        id: ConnId,
    },
    ConnectFailed {
        id: ConnId,
    },
    Data {
        id: ConnId,
        data: Vec<u8>,
    },
    /// The host closed its write side.
    Eof {
        id: ConnId,
    },
    /// The host connection failed (reset, error).
    Reset {
        id: ConnId,
    },
    Written {
        id: ConnId,
        bytes: usize,
    },
    /// A connection accepted on the listener of forward number `forward`.
    Accepted {
        id: ConnId,
        forward: usize,
    },
    Datagram {
        id: ConnId,
        from: SocketAddr,
        data: Vec<u8>,
    },
}

/// "The host delivered something": the flag `host_pending` reads and the
/// channel a halted machine blocks on.
pub struct Signal {
    pending: AtomicBool,
    wake_tx: Sender<()>,
    pub(super) wake_rx: Receiver<()>,
    /// Datagrams queued in events and not yet taken by the machine.
    pub(super) udp_queued: AtomicUsize,
    /// Datagrams from the host dropped because `UDP_QUEUE` was full.
    pub(super) udp_dropped: AtomicU64,
}

impl Signal {
    fn new() -> Self {
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        Signal {
            pending: AtomicBool::new(false),
            wake_tx,
            wake_rx,
            udp_queued: AtomicUsize::new(0),
            udp_dropped: AtomicU64::new(0),
        }
    }

    fn raise(&self) {
        self.pending.store(true, Ordering::Release);
        let _ = self.wake_tx.try_send(());
    }

    pub fn pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Called by the machine before it drains events: anything pushed after
    /// this raises the flag again.
    pub fn clear(&self) {
        self.pending.store(false, Ordering::Release);
    }
}

/// A listening socket made by the constructor (so a port in use is its error).
pub enum Listener {
    Tcp { sock: TcpListener, forward: usize },
    Udp { sock: UdpSocket, id: ConnId },
}

/// The machine thread's handle on the host thread.
pub struct HostLink {
    cmd_tx: Sender<Command>,
    batch: Vec<Command>,
    events: Receiver<Event>,
    waker: Arc<Waker>,
    pub signal: Arc<Signal>,
    next_id: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl HostLink {
    /// Starts the host thread with the forwards' listeners. `next_id` must
    /// be above every id the listeners use.
    pub fn start(listeners: Vec<Listener>, next_id: ConnId) -> io::Result<HostLink> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
        let (ev_tx, events) = crossbeam_channel::unbounded();
        let signal = Arc::new(Signal::new());
        let next_id = Arc::new(AtomicU64::new(next_id));
        let stop = Arc::new(AtomicBool::new(false));
        let mut io = HostIo {
            poll,
            cmd_rx,
            ev_tx,
            signal: signal.clone(),
            next_id: next_id.clone(),
            stop: stop.clone(),
            socks: HashMap::new(),
            raised: false,
        };
        for l in listeners {
            io.add_listener(l)?;
        }
        let thread = std::thread::Builder::new()
            .name("vx86-usernet".into())
            .spawn(move || io.run())?;
        Ok(HostLink {
            cmd_tx,
            batch: Vec::new(),
            events,
            waker,
            signal,
            next_id,
            thread: Some(thread),
            stop,
        })
    }

    pub fn new_id(&self) -> ConnId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues a command; [`flush`](Self::flush) sends the batch.
    pub fn send(&mut self, c: Command) {
        self.batch.push(c);
    }

    /// Sends the queued commands and wakes the host thread once.
    pub fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        for c in self.batch.drain(..) {
            let _ = self.cmd_tx.send(c);
        }
        let _ = self.waker.wake();
    }

    pub fn try_event(&self) -> Option<Event> {
        self.events.try_recv().ok()
    }
}

impl Drop for HostLink {
    /// Stops the host thread (it closes every socket) and waits for it.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct TcpConn {
    stream: TcpStream,
    connecting: bool,
    /// Guest data not yet written, and how much of the front chunk was.
    out: VecDeque<Vec<u8>>,
    out_off: usize,
    shutdown_pending: bool,
    credit: usize,
    /// Reading stopped with no credit left (not at `WouldBlock`), so the next
    /// credit must resume it: the socket will not signal readiness again.
    read_stalled: bool,
    /// EOF or an error was reported: nothing more to read or write.
    done_reading: bool,
    failed: bool,
    /// The machine is done with it: close once `out` is written.
    close_when_flushed: bool,
}

enum Sock {
    Tcp(Box<TcpConn>),
    Listener(TcpListener, usize),
    Udp(UdpSocket),
}

struct HostIo {
    poll: Poll,
    cmd_rx: Receiver<Command>,
    ev_tx: Sender<Event>,
    signal: Arc<Signal>,
    next_id: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    socks: HashMap<ConnId, Sock>,
    raised: bool,
}

fn token(id: ConnId) -> Token {
    Token(id as usize)
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl HostIo {
    fn add_listener(&mut self, l: Listener) -> io::Result<()> {
        match l {
            Listener::Tcp { mut sock, forward } => {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                self.poll
                    .registry()
                    .register(&mut sock, token(id), Interest::READABLE)?;
                self.socks.insert(id, Sock::Listener(sock, forward));
            }
            Listener::Udp { mut sock, id } => {
                self.poll
                    .registry()
                    .register(&mut sock, token(id), Interest::READABLE)?;
                self.socks.insert(id, Sock::Udp(sock));
            }
        }
        Ok(())
    }

    fn remove(&mut self, id: ConnId) {
        if let Some(mut s) = self.socks.remove(&id) {
            let r = self.poll.registry();
            let _ = match &mut s {
                Sock::Tcp(c) => r.deregister(&mut c.stream),
                Sock::Listener(l, _) => r.deregister(l),
                Sock::Udp(u) => r.deregister(u),
            };
        }
    }

    fn emit(&mut self, e: Event) {
        let _ = self.ev_tx.send(e);
        self.raised = true;
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return;
                }
            }
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            for ev in events.iter() {
                if ev.token() == WAKER {
                    continue;
                }
                let id = ev.token().0 as ConnId;
                self.ready(id, &mut buf);
            }
            while let Ok(c) = self.cmd_rx.try_recv() {
                self.command(c, &mut buf);
            }
            if std::mem::take(&mut self.raised) {
                self.signal.raise();
            }
        }
    }

    fn ready(&mut self, id: ConnId, buf: &mut [u8]) {
        match self.socks.get_mut(&id) {
            Some(Sock::Tcp(c)) if c.connecting => self.finish_connect(id, buf),
            Some(Sock::Tcp(_)) => {
                self.read_tcp(id, buf);
                self.write_tcp(id);
            }
            Some(Sock::Listener(..)) => self.accept(id),
            Some(Sock::Udp(_)) => self.read_udp(id, buf),
            None => {}
        }
    }

    fn command(&mut self, c: Command, buf: &mut [u8]) {
        match c {
            Command::Connect { id, addr } => match TcpStream::connect(addr) {
                Ok(mut stream) => {
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, token(id), interest)
                        .is_err()
                    {
                        self.emit(Event::ConnectFailed { id });
                        return;
                    }
                    self.socks
                        .insert(id, Sock::Tcp(Box::new(TcpConn::new(stream, true))));
                }
                Err(_) => self.emit(Event::ConnectFailed { id }),
            },
            Command::Send { id, data } => {
                if let Some(Sock::Tcp(c)) = self.socks.get_mut(&id) {
                    c.out.push_back(data);
                    if !c.connecting {
                        self.write_tcp(id);
                    }
                }
            }
            Command::ShutdownWrite { id } => {
                if let Some(Sock::Tcp(c)) = self.socks.get_mut(&id) {
                    c.shutdown_pending = true;
                    if !c.connecting {
                        self.write_tcp(id);
                    }
                }
            }
            Command::Close { id } => {
                if let Some(Sock::Tcp(c)) = self.socks.get_mut(&id) {
                    // The guest's last bytes (and FIN) still go out first.
                    if !c.failed && !c.connecting && (!c.out.is_empty() || c.shutdown_pending) {
                        c.close_when_flushed = true;
                        return;
                    }
                }
                self.remove(id);
            }
            Command::Credit { id, bytes } => {
                if let Some(Sock::Tcp(c)) = self.socks.get_mut(&id) {
                    c.credit += bytes;
                    if std::mem::take(&mut c.read_stalled) {
                        self.read_tcp(id, buf);
                    }
                }
            }
            Command::UdpOpen { id, peer } => {
                if let Ok(mut sock) = udp_connected(peer) {
                    if self
                        .poll
                        .registry()
                        .register(&mut sock, token(id), Interest::READABLE)
                        .is_ok()
                    {
                        self.socks.insert(id, Sock::Udp(sock));
                    }
                }
            }
            Command::UdpSend { id, to, data } => {
                // UDP is lossy: a datagram the host cannot take now is dropped.
                if let Some(Sock::Udp(s)) = self.socks.get(&id) {
                    let _ = match to {
                        Some(to) => s.send_to(&data, to),
                        None => s.send(&data),
                    };
                }
            }
        }
    }

    /// mio's connect protocol: after a writable event, `take_error` then
    /// `peer_addr` tell whether the connection was made.
    fn finish_connect(&mut self, id: ConnId, buf: &mut [u8]) {
        let Some(Sock::Tcp(c)) = self.socks.get_mut(&id) else {
            return;
        };
        let ok = match c.stream.take_error() {
            Ok(None) => match c.stream.peer_addr() {
                Ok(_) => true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(_) => false,
            },
            _ => false,
        };
        if !ok {
            let _ = self.poll.registry().deregister(&mut c.stream);
            self.socks.remove(&id);
            self.emit(Event::ConnectFailed { id });
            return;
        }
        c.connecting = false;
        let _ = c.stream.set_nodelay(true);
        self.emit(Event::Connected { id });
        self.read_tcp(id, buf);
        self.write_tcp(id);
    }

    fn read_tcp(&mut self, id: ConnId, buf: &mut [u8]) {
        let Some(Sock::Tcp(c)) = self.socks.get_mut(&id) else {
            return;
        };
        let mut out = Vec::new();
        while !c.done_reading {
            if c.credit == 0 {
                c.read_stalled = true;
                break;
            }
            let n = c.credit.min(buf.len());
            match c.stream.read(&mut buf[..n]) {
                Ok(0) => {
                    c.done_reading = true;
                    out.push(Event::Eof { id });
                }
                Ok(n) => {
                    c.credit -= n;
                    out.push(Event::Data {
                        id,
                        data: buf[..n].to_vec(),
                    });
                }
                Err(e) if would_block(&e) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    c.done_reading = true;
                    if !std::mem::replace(&mut c.failed, true) {
                        out.push(Event::Reset { id });
                    }
                }
            }
        }
        for e in out {
            self.emit(e);
        }
    }

    fn write_tcp(&mut self, id: ConnId) {
        let Some(Sock::Tcp(c)) = self.socks.get_mut(&id) else {
            return;
        };
        let mut written = 0;
        let mut failed = false;
        while let Some(front) = c.out.front() {
            let rest = front.get(c.out_off..).unwrap_or_default();
            match c.stream.write(rest) {
                Ok(0) => break,
                Ok(n) => {
                    written += n;
                    c.out_off += n;
                    if c.out_off >= front.len() {
                        c.out.pop_front();
                        c.out_off = 0;
                    }
                }
                Err(e) if would_block(&e) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    failed = !std::mem::replace(&mut c.failed, true);
                    c.out.clear();
                    break;
                }
            }
        }
        if c.out.is_empty() && c.shutdown_pending && !c.failed {
            c.shutdown_pending = false;
            let _ = c.stream.shutdown(Shutdown::Write);
        }
        let flushed = c.close_when_flushed && (c.out.is_empty() || c.failed);
        if flushed {
            self.remove(id);
            return;
        }
        if written > 0 {
            self.emit(Event::Written { id, bytes: written });
        }
        if failed {
            self.emit(Event::Reset { id });
        }
    }

    fn accept(&mut self, lid: ConnId) {
        loop {
            let Some(Sock::Listener(l, forward)) = self.socks.get(&lid) else {
                return;
            };
            let forward = *forward;
            match l.accept() {
                Ok((mut stream, _)) => {
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.set_nodelay(true);
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, token(id), interest)
                        .is_ok()
                    {
                        self.socks
                            .insert(id, Sock::Tcp(Box::new(TcpConn::new(stream, false))));
                        self.emit(Event::Accepted { id, forward });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // WouldBlock, or a connection that failed before it was accepted.
                Err(e) if would_block(&e) => return,
                Err(_) => return,
            }
        }
    }

    fn read_udp(&mut self, id: ConnId, buf: &mut [u8]) {
        let mut out = Vec::new();
        {
            let Some(Sock::Udp(s)) = self.socks.get(&id) else {
                return;
            };
            loop {
                match s.recv_from(buf) {
                    Ok((n, from)) => {
                        if self.signal.udp_queued.load(Ordering::Acquire) >= UDP_QUEUE {
                            self.signal.udp_dropped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        self.signal.udp_queued.fetch_add(1, Ordering::AcqRel);
                        out.push(Event::Datagram {
                            id,
                            from,
                            data: buf.get(..n).unwrap_or_default().to_vec(),
                        });
                    }
                    Err(e) if would_block(&e) => break,
                    // ICMP errors from earlier sends (ECONNREFUSED, Windows'
                    // WSAECONNRESET) surface here: skip them.
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionRefused
                                | io::ErrorKind::ConnectionReset
                                | io::ErrorKind::Interrupted
                        ) => {}
                    Err(_) => break,
                }
            }
        }
        for e in out {
            self.emit(e);
        }
    }
}

impl TcpConn {
    fn new(stream: TcpStream, connecting: bool) -> Self {
        TcpConn {
            stream,
            connecting,
            out: VecDeque::new(),
            out_off: 0,
            shutdown_pending: false,
            credit: HOST_READ_CREDIT,
            read_stalled: false,
            done_reading: false,
            failed: false,
            close_when_flushed: false,
        }
    }
}

/// A UDP socket on an ephemeral port of the peer's family, connected to it
/// (so only the peer's replies come back, as a NAT's filtering would).
fn udp_connected(peer: SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr = match peer {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let s = UdpSocket::bind(any)?;
    s.connect(peer)?;
    Ok(s)
}
