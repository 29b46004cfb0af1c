//! `siamese index add` and `siamese search`: a trained run's retrieval system kept in the
//! embedding database (`--db`, default `$SIAMESE_DB`, else `RUN/index.db`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use siamese::recognize::image_index::{index_images, search_images};
use siamese::store::{self, Locator};

#[derive(Args)]
pub struct IndexArgs {
    #[command(subcommand)]
    command: IndexCommand,
}

#[derive(Subcommand)]
enum IndexCommand {
    /// Embed images (files or folders) with a run into the database; unchanged files are kept.
    Add(AddArgs),
}

#[derive(Args)]
struct AddArgs {
    /// Run folder written by `siamese train`.
    #[arg(long)]
    model: PathBuf,
    /// Images or folders of images (searched recursively).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// The database: SQLite file, `postgres://…` URL or `@FILE` (default `$SIAMESE_DB`, else
    /// `RUN/index.db`).
    #[arg(long, value_name = "FILE|URL|@FILE")]
    db: Option<String>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct SearchArgs {
    /// Run folder written by `siamese train`.
    #[arg(long)]
    model: PathBuf,
    /// The query image.
    image: PathBuf,
    /// Results.
    #[arg(short, long, default_value_t = 10)]
    k: usize,
    /// Exact search even where the engine has an approximate index.
    #[arg(long)]
    exact: bool,
    /// The database (default `$SIAMESE_DB`, else `RUN/index.db`).
    #[arg(long, value_name = "FILE|URL|@FILE")]
    db: Option<String>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: IndexArgs) -> anyhow::Result<()> {
    match args.command {
        IndexCommand::Add(a) => add(a),
    }
}

fn add(args: AddArgs) -> anyhow::Result<()> {
    let locator = Locator::resolve(args.db.as_deref(), || args.model.join("index.db"))?;
    let mut database = store::open(&locator)?;
    let report = index_images(database.as_mut(), &args.model, &args.images)?;
    if args.json {
        let mut out = serde_json::to_value(&report)?;
        out["database"] = locator.redacted().into();
        println!("{out}");
    } else {
        println!(
            "{} images embedded, {} unchanged; {} images of dimension {} in {locator} (collection {})",
            report.added, report.unchanged, report.images, report.dim, report.collection
        );
    }
    Ok(())
}

pub fn search(args: SearchArgs) -> anyhow::Result<()> {
    let locator = Locator::resolve(args.db.as_deref(), || args.model.join("index.db"))?;
    let mut database = store::open_existing(&locator)?;
    let hits = search_images(
        database.as_mut(),
        &args.model,
        &args.image,
        args.k,
        args.exact,
    )?;
    if args.json {
        let out = serde_json::json!({
            "query": args.image, "database": locator.redacted(), "hits": hits,
        });
        println!("{out}");
    } else {
        for h in &hits {
            println!("{:3}. {:.4} {}", h.rank, h.distance, h.path);
        }
    }
    Ok(())
}
