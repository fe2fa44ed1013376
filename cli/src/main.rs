//! `amicn`: the one binary of the amicn named-data overlay.
//!
//! Each subcommand lives in its own module under `cmd/`; this file only parses the command line
//! and dispatches.

mod cmd;

use clap::{Parser, Subcommand};

/// amicn — a named-data (NDN) forwarder and key-management stack for smart-grid AMI.
#[derive(Debug, Parser)]
#[command(name = "amicn", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    // Subcommands are added here, one line each, dispatched in `main` below.
    /// Print the TLV tree of packets from a file, stdin or hex (like ndn-dissect)
    Dissect(cmd::dissect::DissectArgs),
    /// Convert a name URI to its canonical form and Name TLV, or back with --hex
    Name(cmd::name::NameArgs),
    /// Express one Interest and print the Data (ndnpeek)
    Peek(cmd::peek::PeekArgs),
    /// Serve one Data packet (ndnpoke)
    Poke(cmd::poke::PokeArgs),
    /// Ping a prefix (ndnping name scheme)
    Ping(cmd::ping::PingArgs),
    /// Answer pings under a prefix (ndnpingserver)
    PingServer(cmd::ping::PingServerArgs),
    /// Publish a file or stdin as a versioned, segmented, signed object
    Put(cmd::put::PutArgs),
    /// Fetch a segmented object to a file or stdout
    Get(cmd::get::GetArgs),
    /// Manage signing identities and certificates
    Key(cmd::key::KeyArgs),
    /// The KMS daemon (`kms serve`) and key-management tools (`kms cost`)
    Kms(cmd::kms::KmsArgs),
    #[command(flatten)]
    Admin(cmd::admin::AdminCommand),
    /// Run the forwarder (NFD-compatible; Unix socket, TCP/UDP 6363)
    Fwd(Box<cmd::fwd::FwdArgs>),
    /// Benchmarks (`bench fwd`: forwarder vs. direct connection and a null relay)
    Bench(cmd::bench::BenchArgs),
    /// Run a complete AMI scenario on this machine and check its security properties
    Demo(cmd::demo::DemoArgs),
    /// Provision a utility: trust anchor, certificates and one directory per node
    Pki(Box<cmd::node::PkiArgs>),
    /// Run the MDMS: collect, verify, decrypt and store every member's readings
    Mdms(Box<cmd::node::NodeArgs>),
    /// Run the pricing publisher (tariffs under the broadcast key)
    Pricing(Box<cmd::node::NodeArgs>),
    /// Run the DR operator (events under each project's key)
    Dr(Box<cmd::node::NodeArgs>),
    /// Run one or many simulated meters (each with its own identity, keys and state)
    Meter(Box<cmd::node::MeterArgs>),
    /// Operator commands to the KMS: entitle meters to DR projects, revoke, retire
    Ami(Box<cmd::node::AmiArgs>),
    /// Meter data sets: generate synthetic readings, import a CSV as signed named Data
    Data(cmd::data::DataArgs),
    /// A durable named-data repository: serve, insert, delete, stats
    Repo(cmd::repo::RepoArgs),
    /// Topology files: generate, import from Mini-NDN, show routes, write per-node configs
    Topo(cmd::topo::TopoArgs),
    /// Run a topology as an experiment in network namespaces (results, plots, comparisons)
    Exp(cmd::exp::ExpArgs),
    /// Forge answers to wrap and reading Interests (started by `amicn demo`)
    #[command(hide = true)]
    DemoAttacker(cmd::attacker::AttackerArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Dissect(a) => cmd::dissect::run(a),
        Command::Name(a) => cmd::name::run(a),
        Command::Peek(a) => cmd::peek::run(a),
        Command::Poke(a) => cmd::poke::run(a),
        Command::Ping(a) => cmd::ping::run(a),
        Command::PingServer(a) => cmd::ping::run_server(a),
        Command::Put(a) => cmd::put::run(a),
        Command::Get(a) => cmd::get::run(a),
        Command::Key(a) => cmd::key::run(a),
        Command::Kms(a) => cmd::kms::run(a),
        Command::Admin(c) => cmd::admin::run(c),
        Command::Fwd(a) => cmd::fwd::run(*a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Pki(a) => cmd::node::run_pki(*a),
        Command::Mdms(a) => cmd::node::run_daemon("mdms", &a),
        Command::Pricing(a) => cmd::node::run_daemon("pricing", &a),
        Command::Dr(a) => cmd::node::run_daemon("dr", &a),
        Command::Meter(a) => cmd::node::run_meter(*a),
        Command::Ami(a) => cmd::node::run_ami(*a),
        Command::Data(a) => cmd::data::run(a),
        Command::Repo(a) => cmd::repo::run(a),
        Command::Topo(a) => cmd::topo::run(a),
        Command::Exp(a) => cmd::exp::run(a),
        Command::DemoAttacker(a) => cmd::attacker::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("amicn: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
