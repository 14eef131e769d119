//! Kafka request frames through the broker's real request path: the bytes of one connection
//! (length-prefixed frames, as on the wire) are cut into frames by `network::frame::parse_frame`
//! and each frame goes to `handlers::dispatch::handle_frame` — header decoding, version checks, body
//! decoding with kafka-protocol, the handler, response encoding — of a broker opened once on a
//! scratch directory. No socket is involved.
//!
//! Tokio's clock is paused: a long-poll fetch that waits advances virtual time instead of the
//! fuzzer's. Group deadlines follow the real clock and are driven by the coordinator's `tick`,
//! which the broker's housekeeping task calls; here it is called each virtual second while a
//! request waits. A request still waiting after 3 s of real time (a join waiting for members that
//! are gone, within the rebalance timeout the client chose) is dropped, as when a client
//! disconnects, and the input ends. (No virtual timeout: the paused clock also jumps while a
//! handler waits for blocking file work, so such a timeout would fire at random.)
//!
//! What must hold for any input: no panic; a request either gets a response whose size prefix
//! matches its length, no response (acks=0), or a protocol error that closes the connection;
//! never an error while encoding the response to a request that was decoded.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use chronik::handlers::dispatch::{Session, handle_frame};
use chronik::protocol::{Chunk, ProtocolError};
use chronik::{Broker, Config};
use libfuzzer_sys::fuzz_target;

/// The broker binary's allocator (src/main.rs). It matters here: kafka-protocol 0.18 reserves
/// `Vec` capacity from the element count a request declares before reading the elements, so a
/// small frame can ask for tens of GiB. mimalloc reserves such a block without committing it
/// and the decoder then fails on the missing bytes; under glibc's malloc the allocation fails and
/// the process aborts (docs/fuzzing.md, "Crashes found").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Largest frame accepted, as `kafka.request_max_bytes` would bound it.
const MAX_FRAME: u32 = 1 << 20;

struct Harness {
    rt: tokio::runtime::Runtime,
    broker: Arc<Broker>,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let dir = chronik_fuzz::scratch_dir("chronik-fuzz-broker-");
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.group.initial_rebalance_delay_ms = 0;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        let bound: SocketAddr = "127.0.0.1:9092".parse().expect("address");
        let broker = rt
            .block_on(async { Broker::open(config, bound, None, None) })
            .expect("broker opens on an empty directory");
        Harness {
            rt,
            broker,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let mut buf = BytesMut::from(data);
    let conn = chronik::network::ConnectionInfo {
        peer: SocketAddr::from(([127, 0, 0, 1], 40000)),
        listener: std::sync::Arc::new(chronik::network::ListenerContext::plaintext("PLAINTEXT")),
        peer_certificate: None,
    };
    let mut session = Session::new(&conn, chronik::security::ANONYMOUS.into());
    // A connection carries at most a few requests per input: enough to create, write and read.
    for _ in 0..8 {
        let frame: Bytes = match chronik::network::frame::parse_frame(&mut buf, MAX_FRAME) {
            Ok(Some(f)) => f,
            Ok(None) | Err(_) => return,
        };
        let result = h.rt.block_on(async {
            let started = Instant::now();
            let request = handle_frame(&h.broker, &mut session, frame);
            tokio::pin!(request);
            loop {
                tokio::select! {
                    r = &mut request => return Some(r),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {
                        h.broker.groups.tick();
                        if started.elapsed() > Duration::from_secs(3) {
                            return None;
                        }
                    }
                }
            }
        });
        let Some(result) = result else {
            return;
        };
        match result {
            Ok(Some(resp)) => {
                let Some(Chunk::Bytes(first)) = resp.chunks.first() else {
                    panic!("a response starts with its size prefix in memory");
                };
                assert!(first.len() >= 4, "a response has a size prefix");
                let size = i32::from_be_bytes([first[0], first[1], first[2], first[3]]);
                assert_eq!(
                    size as usize + 4,
                    resp.len(),
                    "the size prefix of a response matches its length"
                );
            }
            Ok(None) => {}
            Err(e @ ProtocolError::Encode { .. }) => {
                panic!("a decoded request got a response that does not encode: {e}")
            }
            // The connection would be closed here.
            Err(_) => return,
        }
    }
});
