//! Scale program for the device registry: query latency, memory per device and restart time with
//! `--devices` registered devices, each against a raw layer measured in the same run.
//!
//! ```text
//! cargo build --release --example registry_scale
//! target/release/examples/registry_scale --devices 100000
//! ```
//!
//! 1. **Populate**: a registry on a fresh store in a temporary directory registers the devices
//!    through its typed client, `--in-flight` at a time. Memory growth is read before and after.
//! 2. **Query**: pages by capability through the typed client, against the same range scan and
//!    record reads on a bare redb file holding the same records and a capability index, directly
//!    and through a bare ractor actor.
//! 3. **Restart**, in three child processes of this program over the populated directory. The
//!    first starts the registry under a supervisor and sends a query and `--heartbeats` typed
//!    heartbeats before it has loaded. The second starts a node on the in-process bus, publishes
//!    heartbeats on its bus as soon as it has started, and times queries over the bus. The third
//!    starts a node on a private Mosquitto while a device client publishes heartbeats over MQTT
//!    from before the start to after it. The reference is opening the bare file and decoding
//!    every record.
//!
//! Every loop is bounded by its count and by `--timeout` per phase.

mod bare;
mod devices;
mod measure;
mod queries;
mod restart;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use alicia::actors::registry::{RegistryArgs, RegistryClient, RegistryConfig};
use alicia::core::{Store, SystemClock};
use clap::{Parser, ValueEnum};
use tokio::sync::mpsc;

use measure::{CountingAllocator, Latency, Memory, load_average, millis};
use restart::RestartSettings;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Measures the device registry's query latency, memory per device and restart time.
#[derive(Debug, Parser)]
#[command(name = "registry_scale")]
struct Args {
    /// Devices to register.
    #[arg(long, default_value_t = 100_000)]
    devices: usize,

    /// Timed queries per case and path.
    #[arg(long, default_value_t = 1_000)]
    queries: usize,

    /// Devices per query page (1 to 1000, the registry's maximum).
    #[arg(long, default_value_t = 100)]
    page_size: usize,

    /// Registration calls outstanding at a time while populating.
    #[arg(long, default_value_t = 256)]
    in_flight: usize,

    /// Heartbeats sent while the registry restarts.
    #[arg(long, default_value_t = 10_000)]
    heartbeats: usize,

    /// Upper bound of each phase, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,

    /// Time one query may wait for its reply, in seconds.
    #[arg(long, default_value_t = 10)]
    request_timeout: u64,

    /// The phase this process runs; the restart phases are started by the populate phase.
    #[arg(long, value_enum, default_value_t = Phase::Populate, hide = true)]
    phase: Phase,

    /// The populated data directory, for the restart phases.
    #[arg(long, hide = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    Populate,
    Restart,
    Node,
    Mqtt,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(message) = check(&args) {
        eprintln!("error: {message}");
        return ExitCode::FAILURE;
    }
    let result = match args.phase {
        Phase::Populate => run(&args).await,
        Phase::Restart | Phase::Node | Phase::Mqtt => run_restart_phase(&args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn check(args: &Args) -> Result<(), String> {
    if args.devices == 0 || args.queries == 0 || args.in_flight == 0 {
        return Err("--devices, --queries and --in-flight must be at least 1".into());
    }
    if !(1..=1000).contains(&args.page_size) {
        return Err(format!(
            "--page-size {} is out of range: use 1 to 1000",
            args.page_size
        ));
    }
    if args.heartbeats > args.devices {
        return Err(format!(
            "--heartbeats {} is more than --devices {}: use at most one heartbeat per device",
            args.heartbeats, args.devices
        ));
    }
    Ok(())
}

fn phase_deadline(args: &Args) -> Instant {
    Instant::now() + Duration::from_secs(args.timeout)
}

/// Runs every phase, starting the restart phases as child processes.
async fn run(args: &Args) -> Result<(), String> {
    println!(
        "registry_scale: {} devices, pages of {}, {} queries per case and path, {} heartbeats during restarts",
        args.devices, args.page_size, args.queries, args.heartbeats
    );
    println!("load average at start: {}", load_average());
    let dir = tempfile::tempdir()
        .map_err(|error| format!("creating a temporary directory failed: {error}"))?;
    let data_dir = dir.path().join("node");
    let bare_path = dir.path().join("bare.redb");

    let registry_queries = populate_and_query(args, &data_dir, &bare_path).await?;

    for phase in ["restart", "node", "mqtt"] {
        run_child(args, phase, &data_dir)?;
    }

    println!("bare redb; load average {}", load_average());
    for check_integrity in [true, false] {
        let (opened, scanned, count) = bare::open_and_scan(&bare_path, check_integrity)?;
        println!(
            "  open {} integrity check: {:.0} ms; open and decode all {count} records: {:.0} ms",
            if check_integrity { "with" } else { "without" },
            millis(opened),
            millis(scanned)
        );
    }
    println!("query ratios, registry typed client / bare path, p50 and p99:");
    for (label, typed, direct, actor) in registry_queries {
        println!("  {label}");
        print_ratio("bare redb", &typed, &direct);
        print_ratio("bare actor + redb", &typed, &actor);
    }
    println!("load average at the end: {}", load_average());
    Ok(())
}

type QueryFigures = (String, Option<Latency>, Option<Latency>, Option<Latency>);

/// Registers the devices, reports memory growth, builds the bare file, and times queries through
/// the registry and the bare paths, case by case. Stops the registry before it returns.
async fn populate_and_query(
    args: &Args,
    data_dir: &Path,
    bare_path: &Path,
) -> Result<Vec<QueryFigures>, String> {
    println!("populate; load average {}", load_average());
    let deadline = phase_deadline(args);
    let before = Memory::settled()?;
    let clock = SystemClock::shared();
    let opened = Store::open(data_dir, clock.clone())
        .map_err(|error| format!("opening the store failed: {error}"))?;
    let store = opened.store;
    // Kept past the registry's stop, so that the heap the registry frees is measured apart from
    // the heap that closing the store frees.
    let kept_store = store.clone();
    let (events, mut receiver) = mpsc::channel(4096);
    let drain = tokio::spawn(async move { while receiver.recv().await.is_some() {} });
    let defaults = RegistryConfig::default();
    let config = RegistryConfig {
        max_devices: args.devices.max(defaults.max_devices),
        ..defaults
    };
    let (client, handle) = RegistryClient::spawn(RegistryArgs {
        store,
        clock,
        config,
        events: Some(events),
    })
    .await
    .map_err(|error| format!("starting the registry failed: {error}"))?;
    let empty = Memory::now()?;

    let started = Instant::now();
    let registered = register_all(args, &client, deadline).await?;
    let elapsed = started.elapsed();
    let full = Memory::now()?;
    println!(
        "  {registered} registrations in {:.2} s ({:.0}/s), {} in flight",
        elapsed.as_secs_f64(),
        registered as f64 / elapsed.as_secs_f64(),
        args.in_flight
    );
    println!(
        "  empty registry started:            {}",
        empty.since(&before).totals()
    );
    println!(
        "  memory growth while registering:   {}",
        full.since(&empty).per_device(registered)
    );
    println!(
        "    after malloc_trim:               {}",
        Memory::settled()?.since(&empty).per_device(registered)
    );
    if registered < args.devices {
        return Err(format!(
            "only {registered} of {} devices were registered within {} s",
            args.devices, args.timeout
        ));
    }

    let built = Instant::now();
    let written = bare::build(bare_path, args.devices, deadline)?;
    println!(
        "  bare redb file with {written} records and their capability index built in {:.2} s",
        built.elapsed().as_secs_f64()
    );
    let database = bare::open(bare_path)?;
    let (actor, actor_handle) = ractor::Actor::spawn(None, bare::BareActor, database.clone())
        .await
        .map_err(|error| format!("starting the bare actor failed: {error}"))?;

    println!("query; load average {}", load_average());
    let request_timeout = Duration::from_secs(args.request_timeout);
    let mut figures = Vec::new();
    for case in queries::cases(args.devices, args.queries, args.page_size) {
        let deadline = phase_deadline(args);
        let typed = queries::typed(&client, &case, deadline).await?;
        let direct = queries::bare_direct(&database, &case, deadline)?;
        let through_actor = queries::bare_actor(&actor, &case, deadline, request_timeout).await?;
        println!("  {}", case.label);
        for (path, latency) in [
            ("registry, typed client", &typed),
            ("bare redb", &direct),
            ("bare actor + redb", &through_actor),
        ] {
            if let Some(latency) = latency {
                println!("    {path:<24} {latency}");
            }
        }
        figures.push((case.label, typed, direct, through_actor));
    }

    actor.stop(None);
    let _ = actor_handle.await;
    drop(database);

    let in_use = Memory::settled()?;
    if let Some(actor) = client.actor() {
        actor.stop(None);
    }
    handle
        .await
        .map_err(|error| format!("the registry actor failed: {error}"))?;
    drain
        .await
        .map_err(|error| format!("the event task failed: {error}"))?;
    let stopped = Memory::settled()?;
    drop(kept_store);
    let closed = Memory::settled()?;
    println!("  after the queries, by owner, each after malloc_trim:");
    println!(
        "    registry actor state, freed at stop: {}",
        in_use.since(&stopped).per_device(registered)
    );
    println!(
        "    store, freed by closing it:          {}",
        stopped.since(&closed).per_device(registered)
    );
    print_file_size(
        "registry database file",
        &data_dir.join("alicia.redb"),
        registered,
    );
    print_file_size("bare redb file", bare_path, registered);
    Ok(figures)
}

fn print_file_size(label: &str, path: &Path, devices: usize) {
    match std::fs::metadata(path) {
        Ok(metadata) => println!(
            "  {label}: {:.1} MiB = {:.0} B/device",
            metadata.len() as f64 / (1024.0 * 1024.0),
            metadata.len() as f64 / devices.max(1) as f64
        ),
        Err(error) => println!("  {label}: size unknown ({error})"),
    }
}

/// Registers devices `0..args.devices` with `args.in_flight` calls outstanding and returns how
/// many were acknowledged before `deadline`.
async fn register_all(
    args: &Args,
    client: &RegistryClient,
    deadline: Instant,
) -> Result<usize, String> {
    let next = Arc::new(AtomicUsize::new(0));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::with_capacity(args.in_flight);
    for _ in 0..args.in_flight {
        let (client, next, acknowledged) = (client.clone(), next.clone(), acknowledged.clone());
        let devices = args.devices;
        workers.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= devices || Instant::now() >= deadline {
                    return Ok::<(), String>(());
                }
                client
                    .register(devices::spec(index))
                    .await
                    .map_err(|error| format!("registering device {index} failed: {error}"))?;
                acknowledged.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for worker in workers {
        worker
            .await
            .map_err(|error| format!("a registration task failed: {error}"))??;
    }
    Ok(acknowledged.load(Ordering::Relaxed))
}

fn print_ratio(path: &str, registry: &Option<Latency>, bare: &Option<Latency>) {
    if let (Some(registry), Some(bare)) = (registry, bare) {
        println!(
            "    / {path:<18} p50 {:.2}, p99 {:.2}",
            registry.p50.as_secs_f64() / bare.p50.as_secs_f64(),
            registry.p99.as_secs_f64() / bare.p99.as_secs_f64()
        );
    }
}

/// Runs this program again as the restart phase `phase` over `data_dir`, and kills it if it
/// outlives its phase bound by more than a minute.
fn run_child(args: &Args, phase: &str, data_dir: &Path) -> Result<(), String> {
    let program = std::env::current_exe()
        .map_err(|error| format!("finding this program's path failed: {error}"))?;
    let mut child = Command::new(program)
        .arg("--phase")
        .arg(phase)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--devices", &args.devices.to_string()])
        .args(["--queries", &args.queries.to_string()])
        .args(["--page-size", &args.page_size.to_string()])
        .args(["--heartbeats", &args.heartbeats.to_string()])
        .args(["--timeout", &args.timeout.to_string()])
        .args(["--request-timeout", &args.request_timeout.to_string()])
        .spawn()
        .map_err(|error| format!("starting the {phase} phase failed: {error}"))?;

    let deadline = phase_deadline(args) + Duration::from_secs(60);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("the {phase} phase failed: {status}")),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the {phase} phase ran past its bound of {} s and was killed",
                    args.timeout + 60
                ));
            }
            Err(error) => return Err(format!("waiting for the {phase} phase failed: {error}")),
        }
    }
}

/// Runs one restart phase in this process.
async fn run_restart_phase(args: &Args) -> Result<(), String> {
    let data_dir = args
        .data_dir
        .as_deref()
        .ok_or("the restart phases need --data-dir")?;
    let settings = RestartSettings {
        data_dir,
        devices: args.devices,
        heartbeats: args.heartbeats,
        queries: args.queries,
        page_size: args.page_size,
        deadline: phase_deadline(args),
        request_timeout: Duration::from_secs(args.request_timeout),
    };
    match args.phase {
        Phase::Node => restart::node(&settings).await,
        Phase::Mqtt => restart::node_over_mqtt(&settings).await,
        _ => restart::supervised(&settings).await,
    }
}
