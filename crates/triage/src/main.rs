//! The `triage` binary: argument parsing, exit codes, and the glue to the
//! subcommands in the library.
//!
//! Exit codes: 0 success; 1 a runtime failure (I/O); 2 bad usage or an
//! invalid configuration; 3 input rejected under `--strict`.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use triage::replay::{ReplayError, ReplayOptions, replay, summary_text};
use triage_config::Config;
use triage_model::DurationSpec;
use triage_sim::StormSpec;

const EXIT_FAILURE: u8 = 1;
const EXIT_CONFIG: u8 = 2;
const EXIT_REJECTED: u8 = 3;

/// Alert correlation and triage: turns Prometheus/Alertmanager alert storms
/// into a few declared incidents with priority, blast radius, root-cause
/// candidates and owners.
#[derive(Parser)]
#[command(name = "triage", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How `run` writes its log lines on stderr. Levels and targets come
    /// from `TRIAGE_LOG` (or `RUST_LOG`), e.g. `info,triage_stream=debug`.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// One line per event: time, level, spans, message, fields.
    Text,
    /// One JSON object per event, for log pipelines.
    Json,
}

/// Sends the service's `tracing` events to stderr in `format`.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter = std::env::var("TRIAGE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        let _ = writeln!(io::stderr(), "triage: TRIAGE_LOG {filter:?} ignored: {e}");
        tracing_subscriber::EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_target(false)
        .with_ansi(io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).init(),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Correlate alerts from a file or stdin; incident events go to stdout
    /// as JSON lines, a summary to stderr.
    Replay(ReplayArgs),
    /// Run as a service until SIGTERM or SIGINT. Standalone (no brokers):
    /// the Alertmanager receiver feeds an in-process correlator and events
    /// go to stdout. On Kafka (`kafka.brokers` or `--brokers`): consume the
    /// alerts topic, produce incident events; the receiver produces to the
    /// alerts topic.
    Run(RunArgs),
    /// Validate a configuration file and describe its catalog.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
    },
    /// Explain incidents: why declared, why this priority, root causes, and
    /// why each alert is a member.
    Explain(ExplainArgs),
    /// Generate a seeded alert storm over the configured catalog.
    Sim(SimArgs),
    /// Score triage's incidents on a storm against its ground truth, beside
    /// Alertmanager's default grouping and fixed time windows.
    Eval(EvalArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// Kafka bootstrap servers, overriding `kafka.brokers`.
    #[arg(long)]
    brokers: Option<String>,
    /// Receiver address, overriding `receiver.listen` (`""`: none).
    #[arg(long)]
    listen: Option<String>,
    /// Standalone: append incident events to this file instead of stdout.
    #[arg(long)]
    events: Option<PathBuf>,
    /// Standalone: keep rejected requests and alerts, with their reason,
    /// as JSON lines in this file.
    #[arg(long)]
    rejects: Option<PathBuf>,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// The configuration (catalog and settings).
    #[arg(long, short)]
    config: PathBuf,
    /// The storm: alerts as JSON lines.
    #[arg(long)]
    alerts: PathBuf,
    /// Ground truth as JSON lines (`triage sim --truth`).
    #[arg(long)]
    truth: PathBuf,
    /// Incident events to score; without it the storm is replayed with
    /// every member listed and time run out.
    #[arg(long)]
    events: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// The configuration file (catalog and settings).
    #[arg(long, short)]
    config: PathBuf,
    /// Alerts as JSON lines: webhook payloads, API v2 arrays or single
    /// alerts. `-` or nothing reads stdin.
    input: Option<PathBuf>,
    /// Stop at the first rejected line or alert (exit code 3).
    #[arg(long)]
    strict: bool,
    /// At the end, let time run out: resolve what has gone quiet and close
    /// undeclared groups, as a live engine eventually would.
    #[arg(long)]
    drain: bool,
    /// Partition number incident ids derive from.
    #[arg(long, default_value_t = 0)]
    partition: u32,
    /// Keep rejected records, with line, reason and the record, as JSON
    /// lines in this file.
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Format of the summary on stderr.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Text)]
    summary: SummaryFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum SummaryFormat {
    Text,
    Json,
    None,
}

#[derive(clap::Args)]
struct ExplainArgs {
    /// Incident events (the output of `replay`), or alerts with `--config`.
    /// `-` or nothing reads stdin.
    input: Option<PathBuf>,
    /// Only this incident.
    #[arg(long)]
    incident: Option<String>,
    /// Treat the input as alerts: replay them with this configuration
    /// first, then explain the incidents found.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

#[derive(clap::Args)]
struct SimArgs {
    /// The configuration whose catalog the storm runs over.
    #[arg(long, short)]
    config: PathBuf,
    /// Seed; the same seed gives the same storm.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long the storm lasts (Prometheus duration).
    #[arg(long, default_value = "3h")]
    duration: DurationSpec,
    /// Independent faults.
    #[arg(long, default_value_t = 6)]
    faults: u32,
    /// Background noise alerts per hour.
    #[arg(long, default_value_t = 30)]
    noise_per_hour: u32,
    /// Pods alerting per failing service, fewest-most.
    #[arg(long, default_value = "2-5", value_parser = parse_range)]
    pods: (u64, u64),
    /// Symptom alerts each caller of a failing service raises, fewest-most
    /// (of latency, errors, saturation, SLO burn).
    #[arg(long, default_value = "1-3", value_parser = parse_range)]
    symptoms: (u64, u64),
    /// Where to write the storm (stdout when absent).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Where to write the ground truth (JSON lines).
    #[arg(long)]
    truth: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Replay(args) => run_replay(args),
        Command::Run(args) => run_service(args),
        Command::CheckConfig { file } => check_config(&file),
        Command::Explain(args) => run_explain(args),
        Command::Sim(args) => run_sim(args),
        Command::Eval(args) => run_eval(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(io::stderr(), "triage: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn load_config(path: &Path) -> Result<Config, ExitCode> {
    triage_config::load(path).map_err(|errors| {
        let _ = write!(io::stderr(), "triage: {}: {errors}", path.display());
        ExitCode::from(EXIT_CONFIG)
    })
}

fn open_input(path: Option<&Path>) -> anyhow::Result<Box<dyn Read>> {
    Ok(match path {
        None => Box::new(io::stdin().lock()),
        Some(p) if p == Path::new("-") => Box::new(io::stdin().lock()),
        Some(p) => Box::new(File::open(p).with_context(|| format!("cannot open {}", p.display()))?),
    })
}

fn run_replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let config = match load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let input = BufReader::with_capacity(1 << 16, open_input(args.input.as_deref())?);
    let mut rejects_file = match &args.rejects {
        Some(p) => Some(io::BufWriter::new(
            File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => None,
    };
    let options =
        ReplayOptions { strict: args.strict, drain: args.drain, partition: args.partition };
    let rejects = rejects_file.as_mut().map(|w| w as &mut dyn Write);
    let mut stderr = io::stderr().lock();
    let outcome = replay(&config, input, io::stdout().lock(), rejects, &mut stderr, options);
    if let Some(mut w) = rejects_file {
        w.flush().context("cannot write the rejects file")?;
    }
    match outcome {
        Ok(report) => {
            match args.summary {
                SummaryFormat::Text => write!(stderr, "{}", summary_text(&report))?,
                SummaryFormat::Json => writeln!(stderr, "{}", serde_json::to_string(&report)?)?,
                SummaryFormat::None => {}
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ReplayError::Rejected { line, error }) => {
            writeln!(stderr, "triage: --strict: line {line} rejected: {error}")?;
            Ok(ExitCode::from(EXIT_REJECTED))
        }
        Err(ReplayError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(ReplayError::Io(e)) => Err(e.into()),
    }
}

fn run_service(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut config = match load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if let Some(brokers) = args.brokers {
        config.kafka.brokers = brokers;
    }
    if let Some(listen) = args.listen {
        config.receiver.listen = listen;
    }
    let control = triage_stream::Control::default();
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, control.shutdown.clone())
            .context("cannot install the signal handlers")?;
    }
    let config = std::sync::Arc::new(config);
    if !config.kafka.enabled() {
        return run_standalone(config, &control, args.events.as_deref(), args.rejects.as_deref());
    }
    if args.events.is_some() || args.rejects.is_some() {
        writeln!(
            io::stderr(),
            "triage: --events and --rejects are for standalone runs; on Kafka, events go to \
             kafka.topics.incidents and rejects to kafka.topics.dead_letters"
        )?;
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let receiver = if config.receiver.listen.is_empty() {
        None
    } else {
        Some(triage_stream::start_bridge(&config, &control)?)
    };
    let responders = triage_stream::start_kafka_responders(&config, &control)?;
    let served = triage_stream::run(config, &control);
    // Whatever stopped the consumer stops the receiver and responders too.
    control.shutdown.store(true, std::sync::atomic::Ordering::Relaxed);
    for (what, thread) in [("receiver", receiver), ("responders", responders)] {
        if let Some(thread) = thread {
            match thread.join() {
                Ok(result) => result?,
                Err(_) => anyhow::bail!("the {what} thread panicked"),
            }
        }
    }
    let summary = served?;
    let figures = control.telemetry.summary();
    tracing::info!(
        partitions = summary.partitions,
        records = figures.records,
        alerts = figures.alerts,
        events = figures.events,
        dead_letters = figures.dead_letters,
        checkpoints = figures.checkpoints,
        requests = figures.requests,
        bridged_records = figures.bridged,
        "stopped"
    );
    Ok(ExitCode::SUCCESS)
}

/// Standalone: the receiver feeds an in-process correlator.
fn run_standalone(
    config: std::sync::Arc<Config>,
    control: &triage_stream::Control,
    events: Option<&Path>,
    rejects: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let append = |path: &Path| -> anyhow::Result<Box<dyn Write + Send>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Box::new(io::BufWriter::new(file)))
    };
    let outputs = triage_stream::Outputs {
        events: match events {
            Some(path) => append(path)?,
            None => Box::new(io::stdout()),
        },
        rejects: rejects.map(append).transpose()?,
    };
    let summary = triage_stream::run_standalone(config, control, outputs)?;
    let figures = control.telemetry.summary();
    let stats = &summary.stats;
    tracing::info!(
        requests = figures.requests,
        refused = figures.refused,
        alerts = figures.alerts,
        unique_alerts = stats.unique_alerts,
        incidents = stats.distinct_incidents(),
        state_file =
            summary.state_file.as_deref().map_or("none".into(), |p| p.display().to_string()),
        "stopped"
    );
    Ok(ExitCode::SUCCESS)
}

fn check_config(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let stats = config.topology.stats();
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "{}: valid; {} services, {} dependencies, {} cycles, largest {}-hop neighbourhood {}",
        path.display(),
        stats.services,
        stats.edges,
        stats.cycles,
        config.settings.grouping.max_hops,
        stats.largest_neighbourhood
    )?;
    for warning in &config.warnings {
        writeln!(out, "warning: {warning}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn run_explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let input = BufReader::new(open_input(args.input.as_deref())?);
    let (events, problems) = match &args.config {
        Some(config_path) => {
            let config = match load_config(config_path) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let mut events = Vec::new();
            let options = ReplayOptions::default();
            replay(&config, input, &mut events, None, &mut io::sink(), options)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            triage::explain::last_events(events.as_slice())?
        }
        None => triage::explain::last_events(input)?,
    };
    let mut err = io::stderr().lock();
    for problem in problems.iter().take(5) {
        writeln!(err, "triage explain: {problem}")?;
    }
    let mut out = io::stdout().lock();
    let mut shown = 0;
    for event in &events {
        if args.incident.as_ref().is_none_or(|id| *id == event.incident_id) {
            writeln!(out, "{}", triage::explain::render(event))?;
            shown += 1;
        }
    }
    if shown == 0 {
        let what = args.incident.map_or("no incidents in the input".to_owned(), |id| {
            format!("incident {id} is not in the input")
        });
        writeln!(err, "triage explain: {what}")?;
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    Ok(ExitCode::SUCCESS)
}

/// `LO-HI` (or a single `N`) with `1 <= LO <= HI`.
fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (lo, hi) = text.split_once('-').unwrap_or((text, text));
    let number = |s: &str| {
        s.trim().parse::<u64>().map_err(|e| format!("`{text}`: `{s}` is not a count ({e})"))
    };
    let (lo, hi) = (number(lo)?, number(hi)?);
    if lo == 0 || lo > hi {
        return Err(format!("`{text}`: expected LO-HI with 1 <= LO <= HI"));
    }
    Ok((lo, hi))
}

fn run_sim(args: SimArgs) -> anyhow::Result<ExitCode> {
    let config = match load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let spec = StormSpec {
        seed: args.seed,
        duration: args.duration.get().max(Duration::from_secs(60)),
        faults: args.faults,
        noise_per_hour: args.noise_per_hour,
        instances: args.pods,
        symptoms: args.symptoms,
        ..StormSpec::default()
    };
    let storm = triage::sim::storm(&config, &spec);
    let mut out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(io::BufWriter::new(
            File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(io::BufWriter::new(io::stdout().lock())),
    };
    let mut truth = match &args.truth {
        Some(p) => Some(io::BufWriter::new(
            File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => None,
    };
    triage::sim::write(&storm, &mut out, truth.as_mut().map(|w| w as &mut dyn Write))?;
    out.flush()?;
    if let Some(mut t) = truth {
        t.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

fn run_eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let config = match load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let alerts = read(&args.alerts)?;
    let truth = triage::eval::read_truth(read(&args.truth)?.as_slice())
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.truth.display()))?;
    let events = match &args.events {
        Some(path) => triage::explain::last_events(read(path)?.as_slice())?.0,
        None => triage::eval::replay_for_eval(&config, &alerts).map_err(|e| anyhow::anyhow!(e))?,
    };
    let facts = triage::eval::facts(&config, &alerts);
    let report = triage::eval::evaluate(&truth, &facts, &events);
    let mut out = io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", triage::eval::table(&report))?;
    }
    Ok(ExitCode::SUCCESS)
}
