//! The backend driven by a fake guest: a second smoltcp stack (Ethernet, DHCP
//! client) exchanging frames with `UserNet` in memory, on virtual time the
//! test advances. Host peers are threads on 127.0.0.1.

use super::*;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::{dhcpv4, icmp, tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant as RealInstant};

const GUEST_MAC: Mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const GUEST_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
/// Virtual time per step of the harness.
const STEP: Nanos = 50_000;
/// Most virtual time an idle step skips.
const IDLE_SKIP: Nanos = 5_000_000;

#[derive(Default)]
struct GuestNic {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

struct GuestRx(Vec<u8>);
struct GuestTx<'a>(&'a mut Vec<Vec<u8>>);

impl RxToken for GuestRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for GuestTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut p = vec![0; len];
        let r = f(&mut p);
        self.0.push(p);
        r
    }
}

impl Device for GuestNic {
    type RxToken<'a> = GuestRx;
    type TxToken<'a> = GuestTx<'a>;
    fn receive(&mut self, _: Instant) -> Option<(GuestRx, GuestTx<'_>)> {
        let p = self.rx.pop_front()?;
        Some((GuestRx(p), GuestTx(&mut self.tx)))
    }
    fn transmit(&mut self, _: Instant) -> Option<GuestTx<'_>> {
        Some(GuestTx(&mut self.tx))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = wire::ETH_MAX_FRAME;
        c
    }
}

struct Harness {
    net: UserNet,
    iface: Interface,
    nic: GuestNic,
    sockets: SocketSet<'static>,
    now: Nanos,
    /// Every frame the backend gave the guest, in order.
    received: Vec<Vec<u8>>,
    record: bool,
}

/// What a lease gives the guest (and a static guest has from the start):
/// `GUEST_IP`/24 with the gateway as default route.
fn guest_address(iface: &mut Interface) {
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::Ipv4(GUEST_IP), 24)).unwrap();
    });
    iface.routes_mut().add_default_ipv4_route(GATEWAY).unwrap();
}

impl Harness {
    /// A guest with `GUEST_IP` configured statically (`dhcp`: none, to be leased).
    fn new(cfg: &UserConfig, dhcp: bool) -> Harness {
        let net = UserNet::new(cfg).expect("backend");
        let mut nic = GuestNic::default();
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(GUEST_MAC)));
        config.random_seed = 1;
        let mut iface = Interface::new(config, &mut nic, Instant::from_micros(0));
        if !dhcp {
            guest_address(&mut iface);
        }
        Harness {
            net,
            iface,
            nic,
            sockets: SocketSet::new(Vec::new()),
            now: 0,
            received: Vec::new(),
            record: false,
        }
    }

    fn instant(&self) -> Instant {
        Instant::from_micros((self.now / 1000) as i64)
    }

    /// One step: guest frames to the backend, host events and timers,
    /// backend frames to the guest. Waits briefly for the host when idle.
    fn step(&mut self) {
        let t = self.instant();
        self.iface.poll(t, &mut self.nic, &mut self.sockets);
        let mut moved = !self.nic.tx.is_empty();
        for f in std::mem::take(&mut self.nic.tx) {
            self.net.transmit(&f, self.now);
        }
        if self.net.host_pending() || self.net.next_deadline().is_some_and(|d| d <= self.now) {
            self.net.poll(self.now);
        }
        while let Some(f) = self.net.receive() {
            moved = true;
            if self.record {
                self.received.push(f.clone());
            }
            self.nic.rx.push_back(f);
        }
        self.iface.poll(t, &mut self.nic, &mut self.sockets);
        if moved {
            self.now += STEP;
            return;
        }
        // Idle: wait a little for the host, and skip virtual time to the
        // next timer of either stack (smoltcp's guest ARPs once a second).
        if !self.net.host_pending() {
            let _ = self
                .net
                .host_wakeup()
                .recv_timeout(Duration::from_micros(100));
        }
        let guest = self
            .iface
            .poll_at(t, &self.sockets)
            .map(|i| i.total_micros() as u64 * 1000);
        let next = [guest, self.net.next_deadline(), Some(self.now + IDLE_SKIP)];
        self.now = next
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(0)
            .max(self.now + STEP);
    }

    /// Steps until `done` (checked each step) or `real` seconds pass.
    fn run_until(&mut self, real: u64, mut done: impl FnMut(&mut Harness) -> bool) -> bool {
        let end = RealInstant::now() + Duration::from_secs(real);
        while RealInstant::now() < end {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }

    fn add_tcp(&mut self, buf: usize) -> SocketHandle {
        let s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; buf]),
            tcp::SocketBuffer::new(vec![0; buf]),
        );
        self.sockets.add(s)
    }

    fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    fn connect(&mut self, h: SocketHandle, to: SocketAddrV4, local_port: u16) {
        let cx = self.iface.context();
        self.sockets
            .get_mut::<tcp::Socket>(h)
            .connect(cx, to, local_port)
            .unwrap();
    }

    fn add_udp(&mut self, port: u16) -> SocketHandle {
        let buf = || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; 16384]);
        let mut s = udp::Socket::new(buf(), buf());
        s.bind(port).unwrap();
        self.sockets.add(s)
    }
}

/// Deterministic bytes for transfers.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn dhcp_lease_arp_and_ping() {
    let mut h = Harness::new(&UserConfig::default(), true);
    let dhcp = h.sockets.add(dhcpv4::Socket::new());
    let mut lease = None;
    assert!(h.run_until(10, |h| {
        if let Some(dhcpv4::Event::Configured(c)) = h.sockets.get_mut::<dhcpv4::Socket>(dhcp).poll()
        {
            lease = Some((c.address, c.router, c.dns_servers.to_vec()));
        }
        lease.is_some()
    }));
    let (addr, router, dns) = lease.unwrap();
    assert_eq!(addr, smoltcp::wire::Ipv4Cidr::new(GUEST_IP, 24));
    assert_eq!(router, Some(GATEWAY));
    assert_eq!(dns, vec![DNS]);
    guest_address(&mut h.iface);

    // Ping the gateway and the DNS address: the guest ARPs for each first.
    let buf = || icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 1024]);
    let mut s = icmp::Socket::new(buf(), buf());
    s.bind(icmp::Endpoint::Ident(0x1234)).unwrap();
    let ping = h.sockets.add(s);
    for target in [GATEWAY, DNS] {
        let mut req = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
        req.extend_from_slice(b"vx86 ping payload");
        let sum = wire::checksum(&req, 0);
        req[2..4].copy_from_slice(&sum.to_be_bytes());
        h.sockets
            .get_mut::<icmp::Socket>(ping)
            .send_slice(&req, IpAddress::Ipv4(target))
            .unwrap();
        let mut reply = None;
        let ok = h.run_until(5, |h| {
            let mut b = [0u8; 256];
            if let Ok((n, from)) = h.sockets.get_mut::<icmp::Socket>(ping).recv_slice(&mut b) {
                reply = Some((b[..n].to_vec(), from));
            }
            reply.is_some()
        });
        assert!(ok, "no echo reply from {target}: {}", h.net.stats());
        let (reply, from) = reply.unwrap();
        assert_eq!(from, IpAddress::Ipv4(target));
        assert_eq!(reply[0], 0, "echo reply");
        assert_eq!(&reply[4..], &req[4..]);
    }
    assert_eq!(
        h.net.stats().total_drops(),
        h.net.stats().dropped(DropReason::Ethertype)
    );
}

/// A host peer that reads `n` bytes and writes `n` bytes at once, returning
/// the hash of what it read.
fn spawn_peer(l: TcpListener, n: usize, seed: u64) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            w.write_all(&pattern(seed, n)).unwrap();
        });
        let mut got = Vec::with_capacity(n);
        let mut buf = vec![0; 65536];
        while got.len() < n {
            let k = s.read(&mut buf).unwrap();
            assert!(k > 0, "EOF after {} bytes", got.len());
            got.extend_from_slice(&buf[..k]);
        }
        writer.join().unwrap();
        fnv(&got)
    })
}

/// Sends `out` on socket `sock` while reading `n` bytes; returns the hash read.
fn guest_exchange(h: &mut Harness, sock: SocketHandle, out: &[u8], n: usize, secs: u64) -> u64 {
    let mut sent = 0;
    let mut got = Vec::with_capacity(n);
    let ok = h.run_until(secs, |h| {
        let s = h.tcp(sock);
        if sent < out.len() && s.can_send() {
            sent += s.send_slice(&out[sent..]).unwrap();
        }
        while s.can_recv() {
            s.recv(|b| {
                got.extend_from_slice(b);
                (b.len(), ())
            })
            .unwrap();
        }
        sent == out.len() && got.len() >= n
    });
    assert!(ok, "sent {sent}/{}, received {}/{n}", out.len(), got.len());
    fnv(&got)
}

#[test]
fn tcp_to_host_both_ways_and_refused() {
    const N: usize = 4 << 20;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let peer = spawn_peer(l, N, 7);
    let mut h = Harness::new(&UserConfig::default(), false);
    let sock = h.add_tcp(256 * 1024);
    h.connect(sock, SocketAddrV4::new(GATEWAY, port), 40000);
    let out = pattern(3, N);
    let got = guest_exchange(&mut h, sock, &out, N, 120);
    assert_eq!(got, fnv(&pattern(7, N)), "host to guest");
    assert_eq!(peer.join().unwrap(), fnv(&out), "guest to host");
    // The peer closed: the guest sees FIN; closing ours ends the connection.
    assert!(h.run_until(10, |h| !h.tcp(sock).may_recv()));
    h.tcp(sock).close();
    assert!(
        // Real-time bound only: generous for a loaded 2-core CI machine.
        h.run_until(60, |h| h.net.flows().0 == 0),
        "connection not reaped"
    );

    // A closed host port: the guest's connect is reset.
    let refused = h.add_tcp(4096);
    h.connect(refused, SocketAddrV4::new(GATEWAY, closed_port()), 40001);
    assert!(h.run_until(10, |h| h.tcp(refused).state() == tcp::State::Closed));
    let st = h.net.stats();
    assert_eq!((st.tcp_connects, st.tcp_refused), (2, 1));
    // Nothing to connect to at the DNS address's port 80: reset at once, no host.
    let dns80 = h.add_tcp(4096);
    h.connect(dns80, SocketAddrV4::new(DNS, 80), 40002);
    assert!(h.run_until(10, |h| h.tcp(dns80).state() == tcp::State::Closed));
    assert_eq!(h.net.stats().tcp_refused, 2);
}

/// A small receive buffer (inherited by accepted sockets), so data waits in
/// the relay rather than in the kernel.
fn small_receive_buffer(l: &TcpListener) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let size: libc::c_int = 4096;
        // SAFETY: a valid socket descriptor and a pointer to a c_int of the given length.
        let r = unsafe {
            libc::setsockopt(
                l.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0);
    }
    #[cfg(not(unix))]
    let _ = l;
}

/// The guest sends its last bytes and closes while the host stalls, and
/// the host half-closes after that: the guest sends its last bytes and
/// closes: every byte still arrives (the relay drains smoltcp before reaping,
/// and the host thread lingers to write what it holds).
#[test]
fn host_half_close_keeps_guest_data() {
    const N: usize = 4 << 20;
    const TAIL: usize = 512 << 10;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    small_receive_buffer(&l);
    let port = l.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        // Read most, stall while the guest sends the rest and closes (the
        // tail waits in the relay's buffers), then half-close and read it.
        let mut got = vec![0; N - TAIL];
        s.read_exact(&mut got).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        s.shutdown(std::net::Shutdown::Write).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        s.read_to_end(&mut got).unwrap();
        fnv(&got)
    });
    let mut h = Harness::new(&UserConfig::default(), false);
    let sock = h.add_tcp(256 * 1024);
    h.connect(sock, SocketAddrV4::new(GATEWAY, port), 40000);
    let out = pattern(11, N);
    let mut sent = 0;
    assert!(h.run_until(60, |h| {
        let s = h.tcp(sock);
        if sent < N && s.can_send() {
            sent += s.send_slice(&out[sent..]).unwrap();
            if sent == N {
                s.close();
            }
        }
        peer.is_finished()
    }));
    assert_eq!(peer.join().unwrap(), fnv(&out));
}

fn forward_cfg(proto: &str, restrict: bool) -> UserConfig {
    let mut cfg = UserConfig::default();
    cfg.forwards
        .push(crate::net::spec::parse_hostfwd(&format!("{proto}:127.0.0.1:0-:8080")).unwrap());
    cfg.restrict = restrict;
    cfg
}

/// The host connects to the forward; the guest accepts on 8080 and answers.
fn check_tcp_forward(h: &mut Harness) {
    let addr = h.net.forward_addrs()[0];
    let listen = h.add_tcp(65536);
    h.tcp(listen).listen(8080).unwrap();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(b"hello from the host").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut r = Vec::new();
        s.read_to_end(&mut r).unwrap();
        r
    });
    let mut got = Vec::new();
    assert!(h.run_until(30, |h| {
        let s = h.tcp(listen);
        while s.can_recv() {
            s.recv(|b| {
                got.extend_from_slice(b);
                (b.len(), ())
            })
            .unwrap();
        }
        !s.may_recv() && s.state() == tcp::State::CloseWait
    }));
    assert_eq!(got, b"hello from the host");
    let s = h.tcp(listen);
    assert_eq!(
        s.remote_endpoint().map(|e| e.addr),
        Some(IpAddress::Ipv4(GATEWAY))
    );
    s.send_slice(b"HELLO FROM THE GUEST").unwrap();
    s.close();
    assert!(h.run_until(30, |_| client.is_finished()));
    assert_eq!(client.join().unwrap(), b"HELLO FROM THE GUEST");
    assert!(
        // Real-time bound only: generous for a loaded 2-core CI machine.
        h.run_until(60, |h| h.net.flows().0 == 0),
        "connection not reaped"
    );
}

#[test]
fn hostfwd_tcp_and_port_in_use() {
    let cfg = forward_cfg("tcp", false);
    let mut h = Harness::new(&cfg, false);
    check_tcp_forward(&mut h);
    assert_eq!(h.net.stats().tcp_forwarded, 1);

    let mut taken = UserConfig::default();
    let rule = format!("tcp:127.0.0.1:{}-:22", h.net.forward_addrs()[0].port());
    taken
        .forwards
        .push(crate::net::spec::parse_hostfwd(&rule).unwrap());
    let err = UserNet::new(&taken).err().expect("port in use").to_string();
    assert!(
        err.starts_with(&format!("hostfwd={rule}: cannot listen on 127.0.0.1:")),
        "{err}"
    );
}

#[test]
fn restrict_blocks_outbound_but_not_forwards() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    let mut h = Harness::new(&forward_cfg("tcp", true), false);
    let out = h.add_tcp(4096);
    h.connect(out, SocketAddrV4::new(GATEWAY, port), 40000);
    let end = h.now + 3_000_000_000;
    h.run_until(5, |h| h.now > end);
    assert_eq!(
        h.tcp(out).state(),
        tcp::State::SynSent,
        "no answer to the SYN"
    );
    assert!(l.accept().is_err(), "the host saw no connection");
    assert!(h.net.stats().dropped(DropReason::Restricted) >= 1);
    h.tcp(out).abort();
    check_tcp_forward(&mut h);
}

#[test]
fn udp_nat_echo_forward_and_dns() {
    // An echo server on the host, reached as 10.0.2.2.
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    echo.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    std::thread::spawn(move || {
        let mut b = [0u8; 2048];
        if let Ok((n, from)) = echo.recv_from(&mut b) {
            echo.send_to(&b[..n], from).unwrap();
        }
    });
    // A DNS server that answers every query with one A record, 192.0.2.1.
    let dns = UdpSocket::bind("127.0.0.1:0").unwrap();
    dns.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut cfg = forward_cfg("udp", false);
    cfg.host_dns = Some(dns.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut b = [0u8; 512];
        if let Ok((n, from)) = dns.recv_from(&mut b) {
            let mut r = b[..n].to_vec();
            r[2] |= 0x80; // QR
            r[7] = 1; // ANCOUNT
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
            dns.send_to(&r, from).unwrap();
        }
    });
    let mut h = Harness::new(&cfg, false);
    let sock = h.add_udp(5000);

    let recv = |h: &mut Harness| {
        let mut got = None;
        assert!(h.run_until(20, |h| {
            let mut b = [0u8; 2048];
            if let Ok((n, meta)) = h.sockets.get_mut::<udp::Socket>(sock).recv_slice(&mut b) {
                got = Some((b[..n].to_vec(), meta.endpoint));
            }
            got.is_some()
        }));
        got.unwrap()
    };

    let dst = (IpAddress::Ipv4(GATEWAY), echo_port);
    h.sockets
        .get_mut::<udp::Socket>(sock)
        .send_slice(b"echo me", dst)
        .unwrap();
    let (data, from) = recv(&mut h);
    assert_eq!(data, b"echo me");
    assert_eq!((from.addr, from.port), dst);

    // "a.b" A IN, id 0x4242.
    let q = [
        0x42, 0x42, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 1, b'b', 0, 0, 1, 0, 1,
    ];
    h.sockets
        .get_mut::<udp::Socket>(sock)
        .send_slice(&q, (IpAddress::Ipv4(DNS), 53))
        .unwrap();
    let (data, from) = recv(&mut h);
    assert_eq!((from.addr, from.port), (IpAddress::Ipv4(DNS), 53));
    assert_eq!(&data[..2], &[0x42, 0x42]);
    assert_eq!(&data[data.len() - 4..], &[192, 0, 2, 1]);

    // A datagram to the UDP forward reaches the guest's port 8080; its reply goes back.
    let fwd_sock = h.add_udp(8080);
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    peer.send_to(b"to the guest", h.net.forward_addrs()[0])
        .unwrap();
    let mut got = None;
    assert!(h.run_until(20, |h| {
        let mut b = [0u8; 64];
        if let Ok((n, meta)) = h
            .sockets
            .get_mut::<udp::Socket>(fwd_sock)
            .recv_slice(&mut b)
        {
            got = Some((b[..n].to_vec(), meta.endpoint));
        }
        got.is_some()
    }));
    let (data, from) = got.unwrap();
    assert_eq!(data, b"to the guest");
    assert_eq!(from.addr, IpAddress::Ipv4(GATEWAY));
    h.sockets
        .get_mut::<udp::Socket>(fwd_sock)
        .send_slice(b"reply", from)
        .unwrap();
    let end = h.now + 10_000_000;
    h.run_until(2, |h| h.now > end);
    let mut b = [0u8; 64];
    let (n, _) = peer.recv_from(&mut b).unwrap();
    assert_eq!(&b[..n], b"reply");
    assert_eq!(h.net.stats().udp_mappings, 2);
}

/// Frames a guest could send: a starting point for mutation.
fn templates(port: u16) -> Vec<Vec<u8>> {
    let gw = special_mac(GATEWAY);
    let ip = |proto: u8, dst: Ipv4Addr, payload: &[u8]| {
        let p = wire::ipv4_packets(GUEST_IP, dst, proto, 1, payload).remove(0);
        wire::eth_frame(gw, GUEST_MAC, ETHERTYPE_IPV4, &p)
    };
    let tcp = |flags: u8, dst: Ipv4Addr, port: u16| {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&port.to_be_bytes());
        t[4..8].copy_from_slice(&1000u32.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t[14..16].copy_from_slice(&8192u16.to_be_bytes());
        t.extend_from_slice(b"data");
        let sum = wire::checksum(
            &t,
            wire::pseudo_header(GUEST_IP, dst, wire::PROTO_TCP, t.len()),
        );
        t[16..18].copy_from_slice(&sum.to_be_bytes());
        ip(wire::PROTO_TCP, dst, &t)
    };
    let udp = |dst: Ipv4Addr, port: u16, data: &[u8]| {
        let seg = wire::udp_segment(
            SocketAddrV4::new(GUEST_IP, 68),
            SocketAddrV4::new(dst, port),
            data,
        );
        ip(wire::PROTO_UDP, dst, &seg)
    };
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&GUEST_MAC);
    arp.extend_from_slice(&GUEST_IP.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&GATEWAY.octets());
    let mut dhcp = vec![0u8; 240];
    dhcp[0] = 1;
    dhcp[1] = 1;
    dhcp[2] = 6;
    dhcp[28..34].copy_from_slice(&GUEST_MAC);
    dhcp[236..240].copy_from_slice(&[99, 130, 83, 99]);
    dhcp.extend_from_slice(&[53, 1, 1, 255]);
    let mut ping = vec![8, 0, 0, 0, 0, 1, 0, 1, 1, 2, 3];
    let sum = wire::checksum(&ping, 0);
    ping[2..4].copy_from_slice(&sum.to_be_bytes());
    vec![
        wire::eth_frame(BROADCAST_MAC, GUEST_MAC, ETHERTYPE_ARP, &arp),
        wire::eth_frame(gw, GUEST_MAC, 0x86dd, &[0x60; 48]),
        udp(Ipv4Addr::BROADCAST, 67, &dhcp),
        ip(wire::PROTO_ICMP, GATEWAY, &ping),
        tcp(wire::TCP_SYN, DNS, 80),
        tcp(wire::TCP_ACK, GATEWAY, 80),
        tcp(wire::TCP_SYN, GATEWAY, port),
        tcp(wire::TCP_ACK | wire::TCP_FIN, GATEWAY, port),
        udp(
            DNS,
            53,
            &[
                0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'x', 0, 0, 1, 0, 1,
            ],
        ),
    ]
}

/// Feeds `n` mutated frames to a backend, `poll` between them, and returns
/// its stats. `only_local`: frames whose IPv4 destination is not the gateway,
/// the DNS address or a broadcast are not sent, so an unrestricted backend
/// talks to nothing but 127.0.0.1 (the closed `port`).
fn fuzz(cfg: &UserConfig, n: u64, port: u16, only_local: bool) -> UserNet {
    let mut net = UserNet::new(cfg).unwrap();
    let templates = templates(port);
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut now = 0;
    for i in 0..n {
        let mut f = templates[(next() % templates.len() as u64) as usize].clone();
        match i % 6 {
            0 => f.truncate((next() % (f.len() as u64 + 1)) as usize),
            1 => {
                // Flip a few bits anywhere (checksums mostly break).
                for _ in 0..1 + next() % 4 {
                    let at = (next() % f.len() as u64) as usize;
                    f[at] ^= 1 << (next() % 8);
                }
            }
            2 => {
                // An IP fragment (more-fragments bit or an offset), checksum fixed.
                if f.len() > 34 && f[12..14] == [8, 0] {
                    f[20] |= if next() % 2 == 0 { 0x20 } else { 0 };
                    f[21] = next() as u8;
                    f[24..26].copy_from_slice(&[0, 0]);
                    let sum = wire::checksum(&f[14..34], 0);
                    f[24..26].copy_from_slice(&sum.to_be_bytes());
                }
            }
            3 => {
                // Random TCP flags, sequence and ack numbers, checksum fixed.
                if f.len() > 54 && f[23] == wire::PROTO_TCP {
                    f[47] = next() as u8;
                    for b in &mut f[38..46] {
                        *b = next() as u8;
                    }
                    f[50..52].copy_from_slice(&[0, 0]);
                    let sum = wire::checksum(
                        &f[34..],
                        wire::pseudo_header(
                            GUEST_IP,
                            Ipv4Addr::new(f[30], f[31], f[32], f[33]),
                            6,
                            f.len() - 34,
                        ),
                    );
                    f[50..52].copy_from_slice(&sum.to_be_bytes());
                }
            }
            4 => f = (0..next() % 1600).map(|_| next() as u8).collect(),
            _ => f.extend((0..next() % 64).map(|_| next() as u8)),
        }
        let local = |f: &[u8]| match wire::parse_eth(f).and_then(|e| wire::parse_ipv4(e.payload)) {
            Ok(ip) => [GATEWAY, DNS, Ipv4Addr::BROADCAST].contains(&ip.dst),
            Err(_) => true,
        };
        if only_local && !local(&f) {
            continue;
        }
        net.transmit(&f, now);
        now += 10_000 + next() % 1_000_000;
        net.poll(now);
        while net.receive().is_some() {}
    }
    net
}

/// Thousands of mutated frames: no panic, no hang, drops counted by reason.
#[test]
fn fuzz_frames() {
    let start = RealInstant::now();
    let restricted = UserConfig {
        restrict: true,
        ..UserConfig::default()
    };
    let net = fuzz(&restricted, 20_000, closed_port(), false);
    let st = net.stats();
    assert_eq!(st.from_guest.frames, 20_000);
    for r in [
        DropReason::Truncated,
        DropReason::Malformed,
        DropReason::IpChecksum,
        DropReason::TcpChecksum,
        DropReason::UdpChecksum,
        DropReason::Fragment,
        DropReason::Restricted,
        DropReason::NotForUs,
        DropReason::Ethertype,
    ] {
        assert!(st.dropped(r) > 0, "no {} drops: {st}", r.name());
    }
    assert!(st.to_guest.frames > 0, "{st}");
    assert_eq!(net.flows(), (0, 0), "restrict=on made flows");

    // Unrestricted: TCP with random flags reaches smoltcp and the host
    // connect path (a closed port on 127.0.0.1); DNS goes to a closed port.
    let port = closed_port();
    let open = UserConfig {
        host_dns: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
        ..UserConfig::default()
    };
    let net = fuzz(&open, 10_000, port, true);
    let st = net.stats();
    assert!(st.tcp_connects > 0 && st.udp_mappings > 0, "{st}");
    assert!(st.to_guest.frames > 1000, "{st}");
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "too slow: {:?}",
        start.elapsed()
    );
}

/// A snapshot of the backend keeps the guest's network (lease, neighbor
/// table) and drops its host connections: loading it closes the host side
/// of an open connection, the guest's next segment on it is reset, the
/// `hostfwd` rule still forwards, and a new backend that loads the state
/// saves the same bytes.
#[test]
fn a_loaded_snapshot_keeps_the_lease_and_resets_connections() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut got = Vec::new();
        let mut b = [0u8; 64];
        while let Ok(n) = s.read(&mut b) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&b[..n]);
        }
        got
    });
    let mut h = Harness::new(&forward_cfg("tcp", false), true);
    let dhcp = h.sockets.add(dhcpv4::Socket::new());
    assert!(h.run_until(10, |h| matches!(
        h.sockets.get_mut::<dhcpv4::Socket>(dhcp).poll(),
        Some(dhcpv4::Event::Configured(_))
    )));
    h.sockets.remove(dhcp);
    guest_address(&mut h.iface);
    let sock = h.add_tcp(4096);
    h.connect(sock, SocketAddrV4::new(GATEWAY, port), 40000);
    assert!(h.run_until(10, |h| h.tcp(sock).may_send()));
    h.tcp(sock).send_slice(b"before").unwrap();
    assert!(h.run_until(10, |h| h.tcp(sock).send_queue() == 0));
    assert_eq!(h.net.flows().0, 1);

    let state = h.net.save_state().unwrap();
    h.net.load_state(&state).unwrap();
    assert_eq!(h.net.flows(), (0, 0));
    assert!(
        h.run_until(10, |_| peer.is_finished()),
        "host side not closed"
    );
    assert_eq!(peer.join().unwrap(), b"before");
    h.tcp(sock).send_slice(b"after").unwrap();
    assert!(
        h.run_until(10, |h| h.tcp(sock).state() == tcp::State::Closed),
        "not reset: {}",
        h.tcp(sock).state()
    );
    check_tcp_forward(&mut h);

    let mut other = UserNet::new(&UserConfig::default()).unwrap();
    other.load_state(&state).unwrap();
    assert_eq!(other.save_state().unwrap(), state);
    assert_eq!(
        other.snapshot_config(),
        "user,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,dhcpstart=10.0.2.15,restrict=off"
    );
    assert!(h
        .net
        .snapshot_config()
        .ends_with(",hostfwd=tcp:127.0.0.1:0-10.0.2.15:8080"));
}

/// The same guest frames with no host traffic give the same frames back.
#[test]
fn deterministic_without_host_traffic() {
    let run = || {
        let mut h = Harness::new(&UserConfig::default(), true);
        h.record = true;
        let dhcp = h.sockets.add(dhcpv4::Socket::new());
        let mut ok = false;
        h.run_until(10, |h| {
            ok |= matches!(
                h.sockets.get_mut::<dhcpv4::Socket>(dhcp).poll(),
                Some(dhcpv4::Event::Configured(_))
            );
            ok
        });
        assert!(ok);
        guest_address(&mut h.iface);
        // Refused without the host (the DNS address has no port 80), then idle time.
        let s = h.add_tcp(4096);
        h.connect(s, SocketAddrV4::new(DNS, 80), 40000);
        let end = h.now + 2_000_000_000;
        h.run_until(10, |h| h.now >= end);
        assert_eq!(h.tcp(s).state(), tcp::State::Closed);
        (h.now, h.received)
    };
    // Real-time waits change how many steps run, so compare up to the same
    // virtual time: the frames (and so their order) must match.
    let (_, a) = run();
    let (_, b) = run();
    assert!(a.len() >= 4, "{} frames", a.len());
    assert_eq!(a, b);
}

/// 64 MiB each way through the backend; prints MiB/s (virtual time is not
/// real time: this is the host CPU cost of the relay, both stacks included).
#[test]
fn throughput_64mib() {
    const N: usize = 64 << 20;
    for (name, up) in [("guest->host", true), ("host->guest", false)] {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let peer = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
            let mut total = 0;
            if up {
                let mut b = vec![0; 65536];
                loop {
                    match s.read(&mut b).unwrap() {
                        0 => break,
                        n => total += n,
                    }
                }
            } else {
                let chunk = vec![0x5a; 65536];
                while total < N {
                    s.write_all(&chunk).unwrap();
                    total += chunk.len();
                }
            }
            total
        });
        let mut h = Harness::new(&UserConfig::default(), false);
        let sock = h.add_tcp(1 << 20);
        h.connect(sock, SocketAddrV4::new(GATEWAY, port), 40000);
        let chunk = vec![0xa5; 65536];
        let (mut sent, mut got) = (0, 0);
        let start = RealInstant::now();
        let ok = h.run_until(300, |h| {
            let s = h.tcp(sock);
            if up {
                while sent < N && s.can_send() {
                    let n = s.send_slice(&chunk[..chunk.len().min(N - sent)]).unwrap();
                    if n == 0 {
                        break;
                    }
                    sent += n;
                }
                if sent == N && s.state() == tcp::State::Established {
                    s.close();
                }
                sent == N && s.send_queue() == 0
            } else {
                while s.can_recv() {
                    got += s.recv(|b| (b.len(), b.len())).unwrap();
                }
                got >= N
            }
        });
        let secs = start.elapsed().as_secs_f64();
        assert!(ok, "{name}: sent {sent} got {got}");
        if !up {
            h.tcp(sock).close();
        }
        h.run_until(30, |_| peer.is_finished());
        let total = peer.join().unwrap();
        assert_eq!(total, N);
        let st = h.net.stats();
        println!(
            "usernet throughput {name}: 64 MiB in {secs:.2} s = {:.0} MiB/s ({} frames from the guest, {} to it)",
            64.0 / secs,
            st.from_guest.frames,
            st.to_guest.frames
        );
    }
}
