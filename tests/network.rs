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
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
    let g = common::guest::guest_dir();
    let (k, i) = (g.join("vmlinuz"), g.join("initramfs-ctr.cpio.gz"));
    if !k.is_file() || !i.is_file() {
        eprintln!(
            "SKIPPED: {} has no guest (run scripts/build-guest.sh)",
            g.display()
        );
        return;
    }
    let data = common::blob();
    let want_sha = common::sha256(&data);
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
        common::sha256(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        common::sha256(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}
