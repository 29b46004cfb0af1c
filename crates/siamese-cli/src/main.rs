//! `siamese`: the command-line shell over the `siamese` library. Argument parsing and printing
//! only; every computation lives in the library. One file per subcommand group.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "siamese", version, about = "Metric learning with triplet loss")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    // Subcommands, one variant per file in this folder.
}

fn main() {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {};
    if let Err(err) = result {
        // One line, naming the file or value at fault; never a panic.
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
