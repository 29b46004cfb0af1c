//! The database side of `siamese faces`: where the database is (`--db`), which collection a
//! command means, and the people commands (`people`, `name`, `merge`, `move`, `check`).

use super::*;
use siamese::store::{self as db, Backend, CollectionId, CollectionInfo, Locator};

/// Where the embedding database is.
#[derive(Args, Clone)]
pub(super) struct DbArgs {
    /// The database: a SQLite file (created when missing), a `postgres://user@host/db` URL, or
    /// `@FILE` holding either (keeps a password out of shell history); default `$SIAMESE_DB`.
    #[arg(long = "db", alias = "store", value_name = "FILE|URL|@FILE")]
    db: Option<String>,
}

impl DbArgs {
    /// The locator: `--db`, else `$SIAMESE_DB`, else `dir/faces.db` (legacy `.store` files in
    /// `dir` imported into it first, once).
    pub(super) fn locator_in(&self, dir: &Path) -> anyhow::Result<Locator> {
        let mut defaulted = false;
        let loc = Locator::resolve(self.db.as_deref(), || {
            defaulted = true;
            PathBuf::new()
        })?;
        if defaulted {
            std::fs::create_dir_all(dir).map_err(|e| siamese::Error::io(dir, e))?;
            return Ok(Locator::Sqlite(db::legacy::default_database_in(dir)?));
        }
        Ok(loc)
    }

    /// The locator when one is given (`--db` or `$SIAMESE_DB`); an error naming both otherwise.
    pub(super) fn locator(&self) -> anyhow::Result<Locator> {
        let mut missing = false;
        let loc = Locator::resolve(self.db.as_deref(), || {
            missing = true;
            PathBuf::new()
        })?;
        if missing {
            anyhow::bail!(
                "no database given: pass --db FILE|URL|@FILE or set {}",
                db::locator::DB_ENV
            );
        }
        Ok(loc)
    }
}

/// Which collection of the database a people command acts on.
#[derive(Args, Clone)]
pub(super) struct CollectionArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Collection id (see `siamese faces people`); needed only when the database holds more
    /// than one collection of faces.
    #[arg(long)]
    collection: Option<CollectionId>,
}

impl CollectionArgs {
    fn open(&self) -> anyhow::Result<(Box<dyn Backend>, CollectionInfo)> {
        let locator = self.db.locator()?;
        let mut database = db::open_existing(&locator)?;
        let all = database.collections()?;
        let faces: Vec<&CollectionInfo> = all
            .iter()
            .filter(|c| c.spec.model == store::FACE_MODEL)
            .collect();
        let list = || {
            faces
                .iter()
                .map(|c| format!("{} ({} faces)", c.id, c.faces))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let chosen = match self.collection {
            Some(id) => all.iter().find(|c| c.id == id).ok_or_else(|| {
                anyhow::anyhow!("{locator}: no collection {id} (collections: {})", list())
            })?,
            None => match faces.as_slice() {
                [] => anyhow::bail!("{locator}: no faces yet (run `siamese faces cluster` first)"),
                [one] => one,
                _ => anyhow::bail!(
                    "{locator}: {} collections of faces; choose one with --collection ({})",
                    faces.len(),
                    list()
                ),
            },
        };
        let chosen = chosen.clone();
        Ok((database, chosen))
    }
}

#[derive(Args)]
pub(super) struct PeopleArgs {
    #[command(flatten)]
    target: CollectionArgs,
    /// Sample photos listed per person.
    #[arg(long, default_value_t = 3)]
    samples: usize,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(super) struct NameArgs {
    /// Person id.
    person: i64,
    /// The name (an empty string removes it).
    name: String,
    #[command(flatten)]
    target: CollectionArgs,
}

#[derive(Args)]
pub(super) struct MergeArgs {
    /// The person who stays.
    into: i64,
    /// The person whose faces move to `into` (deleted afterwards).
    from: i64,
    #[command(flatten)]
    target: CollectionArgs,
}

#[derive(Args)]
pub(super) struct MoveArgs {
    /// Face id (the `face_id` column of `faces people --json` / clusters.csv's `person` rows).
    face: i64,
    /// The person it belongs to, or `new` to split it off into a new person.
    person: String,
    #[command(flatten)]
    target: CollectionArgs,
}

#[derive(Args)]
pub(super) struct CheckArgs {
    #[command(flatten)]
    db: DbArgs,
}

pub(super) fn people(args: PeopleArgs) -> anyhow::Result<()> {
    let (mut database, info) = args.target.open()?;
    let people = database.people(info.id)?;
    let st = database.load(info.id)?;
    let mut samples: std::collections::HashMap<i64, Vec<(i64, String)>> = Default::default();
    let mut unassigned = 0;
    for (photo, _, face) in st.faces() {
        match face.person {
            Some(p) => {
                let list = samples.entry(p).or_default();
                if list.len() < args.samples {
                    list.push((face.id.unwrap_or(-1), photo.path.clone()));
                }
            }
            None => unassigned += 1,
        }
    }
    if args.json {
        let rows: Vec<serde_json::Value> = people
            .iter()
            .map(|p| {
                let s = samples.get(&p.id).cloned().unwrap_or_default();
                serde_json::json!({
                    "id": p.id, "name": p.name, "faces": p.faces,
                    "samples": s.iter().map(|(id, path)| serde_json::json!({"face_id": id, "photo": path})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let out = serde_json::json!({
            "database": database.describe(), "collection": info.id, "people": rows,
            "faces": info.faces, "unassigned_faces": unassigned,
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "{}: collection {}, {} people, {} faces ({unassigned} without a person)",
        database.describe(),
        info.id,
        people.len(),
        info.faces
    );
    for p in &people {
        let s = samples.get(&p.id).cloned().unwrap_or_default();
        let shown: Vec<String> = s
            .iter()
            .map(|(id, path)| format!("face {id}: {path}"))
            .collect();
        println!(
            "{:6}  {:24} {:5} faces  {}",
            p.id,
            p.name.as_deref().unwrap_or("-"),
            p.faces,
            shown.join("; ")
        );
    }
    Ok(())
}

pub(super) fn name(args: NameArgs) -> anyhow::Result<()> {
    let (mut database, info) = args.target.open()?;
    let name = args.name.trim();
    if name.chars().any(char::is_control) {
        anyhow::bail!("invalid name {:?}: control characters", args.name);
    }
    let name = (!name.is_empty()).then_some(name);
    database.name_person(info.id, args.person, name)?;
    match name {
        Some(n) => println!("person {} is now {n:?}", args.person),
        None => println!("person {} has no name now", args.person),
    }
    Ok(())
}

pub(super) fn merge(args: MergeArgs) -> anyhow::Result<()> {
    let (mut database, info) = args.target.open()?;
    database.merge_people(info.id, args.into, args.from)?;
    println!("merged person {} into person {}", args.from, args.into);
    Ok(())
}

pub(super) fn move_face(args: MoveArgs) -> anyhow::Result<()> {
    let (mut database, info) = args.target.open()?;
    let person = if args.person == "new" {
        database.create_people(info.id, 1)?[0]
    } else {
        args.person.parse::<i64>().map_err(|_| {
            anyhow::anyhow!("invalid person {:?}: a person id or `new`", args.person)
        })?
    };
    database.assign(info.id, &[(args.face, Some(person))])?;
    println!("face {} now belongs to person {person}", args.face);
    Ok(())
}

pub(super) fn check(args: CheckArgs) -> anyhow::Result<()> {
    let locator = args.db.locator()?;
    let mut database = db::open_existing(&locator)?;
    let result = database.check()?;
    if result != "ok" {
        anyhow::bail!("{locator}: integrity check failed: {result}");
    }
    let collections = database.collections()?;
    println!(
        "{}: ok ({} collections, {} faces)",
        database.describe(),
        collections.len(),
        collections.iter().map(|c| c.faces).sum::<usize>()
    );
    Ok(())
}
