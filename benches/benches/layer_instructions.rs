//! A fixed number of requests through one variant of the `MeteringLayer` hello-world, for
//! counting the instructions each request costs with `valgrind --tool=callgrind`
//! (`benches/layer_instructions.sh` runs every variant and prints the figures). Instruction
//! counts do not depend on what else the machine runs, so two builds compare exactly where
//! throughput figures on a shared machine move by several percent from run to run.
//!
//! `cargo bench -p metering-benches --bench layer_instructions -- <variant>` serves
//! `METERING_BENCH_REQUESTS` requests (default 16,000) through `without_layer`,
//! `with_layer_noop_recorder` or `with_layer` (the batching client, shipping to a discard
//! server), from 16 pipelining connections, then flushes the client and exits.

use std::time::{Duration, Instant};

use metering_benches::layer::{HelloServers, pipelined_requests};

const CONNECTIONS: u64 = 16;
const PIPELINE: usize = 16;

fn main() {
    // `cargo bench` passes `--bench` first; the variant is the first other argument.
    let Some(variant) = std::env::args().skip(1).find(|a| !a.starts_with('-')) else {
        eprintln!("usage: layer_instructions <without_layer|with_layer_noop_recorder|with_layer>");
        std::process::exit(2);
    };
    let requests: u64 = std::env::var("METERING_BENCH_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(16_000);
    // Only full batches, and the flush at the end: under valgrind the server runs many
    // times slower, and partial batches sent on a timer would inflate the count.
    let servers = HelloServers::start(Duration::from_secs(3600));
    let Some(&(_, addr)) = servers.addrs.iter().find(|(name, _)| *name == variant) else {
        eprintln!("unknown variant {variant}");
        std::process::exit(2);
    };
    let load = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let served = load.block_on(async {
        let until = Instant::now() + Duration::from_secs(3600);
        let per_connection = requests.div_ceil(CONNECTIONS);
        let tasks: Vec<_> = (0..CONNECTIONS)
            .map(|_| tokio::spawn(pipelined_requests(addr, PIPELINE, until, per_connection)))
            .collect();
        let mut served = 0;
        for task in tasks {
            served += task.await.expect("a load task");
        }
        servers.flush().await;
        served
    });
    println!("{variant}: {served} requests");
}
