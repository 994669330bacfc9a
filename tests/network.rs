//! Networking end to end (issue: "a PCI bus, virtio-net, user-mode
//! networking with port forwarding, and containers on a bridge"): the
//! Debian container guest with `-nic user,model=virtio-net-pci,hostfwd=...`
//! and `vx86.net=1` gets its lease by DHCP, asks the test's DNS server
//! (through the guest's 10.0.2.3), downloads a file from the test's HTTP
//! server on the host's loopback (through 10.0.2.2), starts two containers
//! on a Linux bridge that exchange a TCP message, and publishes one
//! container's web server on the guest's port 8080, which the test reaches
//! from the host through the forward.
//!
//! Only 127.0.0.1 and the guest are involved. Needs the guest from
//! `scripts/build-guest.sh` (skips without it).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn guest_dir() -> PathBuf {
    std::env::var_os("VX86_GUEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("guest-cache"))
        .join("out")
}

/// A deterministic pseudo-random blob (xorshift), a few MiB.
fn blob() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..3 * 1024 * 1024 + 123)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// SHA-256 (FIPS 180-4), to check what the guest's `sha256sum` printed.
fn sha256(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                chunk[4 * i],
                chunk[4 * i + 1],
                chunk[4 * i + 2],
                chunk[4 * i + 3],
            ]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let mut v = h;
        for i in 0..64 {
            let s1 = v[4].rotate_right(6) ^ v[4].rotate_right(11) ^ v[4].rotate_right(25);
            let ch = (v[4] & v[5]) ^ (!v[4] & v[6]);
            let t1 = v[7]
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = v[0].rotate_right(2) ^ v[0].rotate_right(13) ^ v[0].rotate_right(22);
            let maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
            let t2 = s0.wrapping_add(maj);
            v = [
                t1.wrapping_add(t2),
                v[0],
                v[1],
                v[2],
                v[3].wrapping_add(t1),
                v[4],
                v[5],
                v[6],
            ];
        }
        for (a, b) in h.iter_mut().zip(v) {
            *a = a.wrapping_add(b);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

/// Serves `body` for every GET on 127.0.0.1 (a thread; ends with the test).
fn http_server(body: Vec<u8>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind http");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let body = body.clone();
            std::thread::spawn(move || {
                let mut req = [0u8; 2048];
                let _ = s.read(&mut req);
                let head = format!(
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&body);
            });
        }
    });
    addr
}

/// Answers every A query with 192.0.2.77 (RFC 1035 4.1; a TEST-NET-1 address).
fn dns_server() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind dns");
    let addr = s.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = s.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            let q = &buf[..n];
            // The question ends at the name's zero byte, then type and class.
            let Some(end) = q[12..].iter().position(|&b| b == 0).map(|p| 12 + p + 5) else {
                continue;
            };
            if end > n {
                continue;
            }
            let qtype = u16::from_be_bytes([q[end - 4], q[end - 3]]);
            let mut r = Vec::new();
            r.extend_from_slice(&q[..2]); // id
            r.extend_from_slice(&[0x81, 0x80]); // response, RD, RA, no error
            r.extend_from_slice(&[0, 1, 0, u8::from(qtype == 1), 0, 0, 0, 0]);
            r.extend_from_slice(&q[12..end]);
            if qtype == 1 {
                r.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 77]);
            }
            let _ = s.send_to(&r, peer);
        }
    });
    addr
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn http_get(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: vx86\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn containers_on_a_bridge_reach_and_are_reached_through_user_networking() {
    let g = guest_dir();
    let (k, i) = (g.join("vmlinuz"), g.join("initramfs-ctr.cpio.gz"));
    if !k.is_file() || !i.is_file() {
        eprintln!(
            "SKIPPED: {} has no guest (run scripts/build-guest.sh)",
            g.display()
        );
        return;
    }
    let data = blob();
    let want_sha = sha256(&data);
    let http = http_server(data.clone());
    let dns = dns_server();
    let fwd = free_port();
    let append = format!(
        "console=ttyS0 panic=-1 vx86.net=1 vx86.fetch=http://10.0.2.2:{}/blob",
        http.port()
    );
    // Host time (the default): the peers on the host answer in real time.
    let mut child = common::vx86_host_time()
        .args(["-m", "512M", "-nographic", "-no-reboot", "--stats"])
        .arg("-kernel")
        .arg(&k)
        .arg("-initrd")
        .arg(&i)
        .args(["-append", &append])
        .args([
            "-nic",
            &format!("user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:{fwd}-:8080"),
        ])
        .args(["--host-dns", &dns.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start vx86");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(out).split(b'\n').map_while(Result::ok) {
            let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
        }
    });
    let start = Instant::now();
    let mut log = String::new();
    let mut page = None;
    while start.elapsed() < Duration::from_secs(400) * common::time_factor() {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            eprintln!("{:7.1}s | {line}", start.elapsed().as_secs_f64());
            log.push_str(&line);
            log.push('\n');
        }
        if page.is_none() && log.contains("NET-READY") && log.contains("BRIDGE-MSG-OK") {
            // The published port, from the host, through hostfwd -> guest
            // :8080 -> the container's httpd on :80.
            page = Some(http_get(fwd));
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let page = page.unwrap_or_else(|| panic!("no NET-READY within the time limit:\n{log}"));
    let page = page.expect("HTTP GET through the forward");
    assert!(
        page.starts_with("HTTP/1.") && page.contains(" 200 "),
        "{page}"
    );
    assert!(
        page.contains("hello from container ctr1 at 10.88.0.2"),
        "the page names the container: {page}"
    );
    assert!(
        log.contains("DHCP-LEASE ip=10.0.2.15 mask=24 router=10.0.2.2 dns=10.0.2.3"),
        "{log}"
    );
    assert!(
        log.contains("DNS-ANSWER vx86-test.example=192.0.2.77"),
        "{log}"
    );
    assert!(
        log.contains(&format!("FETCH-OK bytes={} sha256={want_sha}", data.len())),
        "want sha256 {want_sha}:\n{log}"
    );
    assert!(
        log.contains("BRIDGE-MSG-OK ctr1 got: hello from ctr2"),
        "{log}"
    );
}

#[test]
fn sha256_matches_fips_180_examples() {
    assert_eq!(
        sha256(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        sha256(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}
