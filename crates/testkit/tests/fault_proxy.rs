//! The fault proxy against a local echo server: it forwards, holds a black-holed client
//! without a word, stalls one direction after exactly N bytes without closing, drops a
//! connection after exactly N bytes, and strikes the first connection only.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::Duration;

use tsmigrate_testkit::{Direction, Fault, FaultProxy};

/// An echo server on a free port of 127.0.0.1 (one thread per connection); its port.
fn echo_server() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap_or_else(|e| panic!("{e}"));
    let port = l
        .local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn client(proxy: &FaultProxy) -> TcpStream {
    let s =
        TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port())).unwrap_or_else(|e| panic!("{e}"));
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap_or_else(|e| panic!("{e}"));
    s
}

/// Sends `data` and reads back what arrives within the read timeout.
fn exchange(s: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    s.write_all(data).unwrap_or_else(|e| panic!("{e}"));
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < data.len() {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

#[test]
fn forwards_black_holes_stalls_and_drops() {
    let port = echo_server();
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();

    let plain = FaultProxy::start(port, Fault::None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(exchange(&mut client(&plain), &data), data);

    let hole = FaultProxy::start(port, Fault::BlackHole).unwrap_or_else(|e| panic!("{e}"));
    let mut c = client(&hole);
    assert!(
        exchange(&mut c, b"hello").is_empty(),
        "a black hole answers nothing"
    );
    let mut one = [0u8; 1];
    assert!(c.read(&mut one).is_err(), "…and does not close");
    assert_eq!(hole.connections(), 1);

    // The echo comes back up to 1000 bytes, then the server→client direction stops, open.
    let stall = Fault::Stall {
        trigger: Direction::ToClient,
        after: 1000,
        stall: Direction::ToClient,
    };
    let p = FaultProxy::start(port, stall).unwrap_or_else(|e| panic!("{e}"));
    let mut c = client(&p);
    assert_eq!(exchange(&mut c, &data), data[..1000]);
    assert!(c.read(&mut one).is_err(), "stalled, not closed");
    assert!(
        exchange(&mut c, b"more").is_empty(),
        "nothing passes once stalled"
    );
    assert!(p.fired());
    // The next connection is not struck.
    assert_eq!(exchange(&mut client(&p), &data), data);

    let drop = Fault::Drop {
        direction: Direction::ToClient,
        after: 700,
    };
    let p = FaultProxy::start(port, drop).unwrap_or_else(|e| panic!("{e}"));
    let mut c = client(&p);
    assert_eq!(exchange(&mut c, &data), data[..700]);
    assert!(
        matches!(c.read(&mut one), Ok(0)),
        "dropped: the client sees the end"
    );
    assert_eq!(exchange(&mut client(&p), &data), data);
}
