//! Writes switchctl's man pages (`switchctl.1`, and `switchctl-on.1`… for each subcommand) from
//! its clap definition into the directory given, default `.`:
//! `cargo run --release -p switchctl --example man -- bin/man`. An example rather than a
//! subcommand so the binary's command line stays what operators use, and clap_mangen stays out
//! of the binary. `scripts/build-cf-plugin` runs it.

use clap::CommandFactory as _;

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os().nth(1).map_or_else(|| std::path::PathBuf::from("."), std::path::PathBuf::from);
    std::fs::create_dir_all(&dir)?;
    clap_mangen::generate_to(switchctl::Cli::command(), &dir)?;
    println!("{}", dir.display());
    Ok(())
}
