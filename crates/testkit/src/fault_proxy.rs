//! A TCP proxy on 127.0.0.1 that puts one network fault between a client under test and a
//! real server: a black hole that accepts and never answers, a connection that stalls one
//! direction after so many bytes without closing, or one that is dropped after so many
//! bytes. Faults that fire on bytes strike one connection only (the first to carry enough),
//! so a client that gives the stalled attempt up and reconnects gets through.
//!
//! Plain threads and blocking sockets: the kit stays free of async runtimes. Only loopback
//! addresses are used, and everything stops when the proxy is dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Result, TestkitError};

/// How often idle threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// One direction of a proxied connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client → server.
    ToServer,
    /// Server → client.
    ToClient,
}

/// The fault a [`FaultProxy`] puts on the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    None,
    /// Accept every connection and never answer: read nothing, send nothing, never close.
    BlackHole,
    /// On the first connection whose `trigger` direction has carried `after` bytes, stop
    /// forwarding the `stall` direction (when it is the trigger's, after exactly `after`
    /// bytes). Nothing is closed, and a side that closes is not passed on: the other side
    /// stays open and silent, as behind a network path that vanished.
    Stall {
        /// The direction whose bytes are counted.
        trigger: Direction,
        /// Bytes of `trigger` forwarded before the fault.
        after: u64,
        /// The direction that stops.
        stall: Direction,
    },
    /// On the first connection whose `direction` has carried `after` bytes, forward exactly
    /// that many and close both sides.
    Drop {
        /// The direction whose bytes are counted.
        direction: Direction,
        /// Bytes forwarded before the connection is dropped.
        after: u64,
    },
}

/// State shared by the proxy's threads.
struct Shared {
    fault: Fault,
    upstream: SocketAddr,
    stop: AtomicBool,
    /// The byte-counted fault has struck (it strikes once).
    fired: AtomicBool,
    connections: AtomicUsize,
    /// Every socket, to shut down when the proxy stops.
    sockets: Mutex<Vec<TcpStream>>,
}

/// A proxy listening on a free port of 127.0.0.1, forwarding to `127.0.0.1:upstream`.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy to the server listening on `127.0.0.1:upstream_port`.
    pub fn start(upstream_port: u16, fault: Fault) -> Result<FaultProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| TestkitError::io("binding the fault proxy", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| TestkitError::io("setting up the fault proxy", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| TestkitError::io("setting up the fault proxy", e))?
            .port();
        let shared = Arc::new(Shared {
            fault,
            upstream: SocketAddr::from((Ipv4Addr::LOCALHOST, upstream_port)),
            stop: AtomicBool::new(false),
            fired: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            sockets: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let accept = std::thread::spawn(move || accept_loop(listener, s));
        Ok(FaultProxy {
            port,
            shared,
            accept: Some(accept),
        })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// True once the byte-counted fault has struck a connection.
    pub fn fired(&self) -> bool {
        self.shared.fired.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Ok(sockets) = self.shared.sockets.lock() {
            for s in sockets.iter() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn keep(shared: &Shared, s: &TcpStream) {
    if let (Ok(mut all), Ok(c)) = (shared.sockets.lock(), s.try_clone()) {
        all.push(c);
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut pumps = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let _ = client.set_nonblocking(false);
                keep(&shared, &client);
                if shared.fault == Fault::BlackHole {
                    continue;
                }
                match TcpStream::connect(shared.upstream) {
                    Ok(server) => {
                        keep(&shared, &server);
                        pumps.extend(start_pumps(client, server, shared.clone()));
                    }
                    Err(_) => {
                        let _ = client.shutdown(Shutdown::Both);
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
    for p in pumps {
        let _ = p.join();
    }
}

/// One connection's state: bytes carried each way, and which directions are stalled.
struct Conn {
    to_server: AtomicU64,
    to_client: AtomicU64,
    stalled: [AtomicBool; 2],
    faulted: AtomicBool,
}

impl Conn {
    fn count(&self, d: Direction) -> &AtomicU64 {
        match d {
            Direction::ToServer => &self.to_server,
            Direction::ToClient => &self.to_client,
        }
    }

    fn stalled(&self, d: Direction) -> &AtomicBool {
        &self.stalled[d as usize]
    }
}

fn start_pumps(client: TcpStream, server: TcpStream, shared: Arc<Shared>) -> Vec<JoinHandle<()>> {
    let conn = Arc::new(Conn {
        to_server: AtomicU64::new(0),
        to_client: AtomicU64::new(0),
        stalled: [AtomicBool::new(false), AtomicBool::new(false)],
        faulted: AtomicBool::new(false),
    });
    let mut handles = Vec::new();
    for (dir, from, to) in [
        (Direction::ToServer, client.try_clone(), server.try_clone()),
        (Direction::ToClient, server.try_clone(), client.try_clone()),
    ] {
        if let (Ok(from), Ok(to)) = (from, to) {
            let (c, s) = (conn.clone(), shared.clone());
            handles.push(std::thread::spawn(move || pump(dir, from, to, &c, &s)));
        }
    }
    handles
}

/// What the fault does to `n` bytes about to be forwarded in `dir`: how many of them go
/// through, and whether the connection is then dropped.
fn strike(dir: Direction, n: u64, conn: &Conn, shared: &Shared) -> (u64, bool) {
    let before = conn.count(dir).fetch_add(n, Ordering::SeqCst);
    let (counted, after) = match shared.fault {
        Fault::Stall { trigger, after, .. } => (trigger, after),
        Fault::Drop { direction, after } => (direction, after),
        Fault::None | Fault::BlackHole => return (n, false),
    };
    let crosses = counted == dir && before < after && before + n >= after;
    if !crosses || shared.fired.swap(true, Ordering::SeqCst) {
        return (n, false);
    }
    conn.faulted.store(true, Ordering::SeqCst);
    match shared.fault {
        Fault::Stall { stall, .. } => {
            conn.stalled(stall).store(true, Ordering::SeqCst);
            (if stall == dir { after - before } else { n }, false)
        }
        _ => (after - before, true),
    }
}

/// Forwards `dir` from `from` to `to` until either side closes or the proxy stops, applying
/// the fault.
fn pump(dir: Direction, mut from: TcpStream, mut to: TcpStream, conn: &Conn, shared: &Shared) {
    let _ = from.set_read_timeout(Some(POLL));
    let mut buf = vec![0u8; 16 * 1024];
    while !shared.stop.load(Ordering::SeqCst) {
        if conn.stalled(dir).load(Ordering::SeqCst) {
            // Read nothing more: the sender's buffers fill and it waits, as on a dead path.
            std::thread::sleep(POLL);
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => {
                // A faulted connection's other side is left open and silent.
                if !conn.faulted.load(Ordering::SeqCst) {
                    let _ = to.shutdown(Shutdown::Write);
                }
                return;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        };
        let (pass, drop_now) = strike(dir, n as u64, conn, shared);
        let pass = usize::try_from(pass).unwrap_or(n).min(n);
        if to.write_all(&buf[..pass]).is_err() {
            return;
        }
        if drop_now {
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
            return;
        }
    }
}
