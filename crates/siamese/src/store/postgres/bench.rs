//! The pgvector benchmark: insert vectors by binary `COPY`, build the HNSW index the store builds
//! (same expression, `m`, `ef_construction`), then time the store's nearest-neighbour query one
//! at a time and compare its answers with exact search (`eval::knn`): insert and build seconds,
//! recall@k, p50/p99 latency, queries per second.

use std::time::Instant;

use pgvector::Vector;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;

use super::schema::{self, HNSW_EF_CONSTRUCTION, HNSW_M, MAX_EF_SEARCH, MAX_INDEXED_DIM};
use super::{error_line, fail, PostgresStore};
use crate::distance::Distance;
use crate::Result;

/// The benchmark's own table (dropped before and after).
const TABLE: &str = "siamese_bench";

/// What [`bench_index`] measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    pub database: String,
    pub server_version: String,
    pub pgvector_version: String,
    pub vectors: usize,
    pub dim: usize,
    pub queries: usize,
    pub k: usize,
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
    /// `maintenance_work_mem` of the build, MiB: sized so the graph fits, since pgvector builds
    /// far slower once it no longer does.
    pub maintenance_work_mem_mb: usize,
    /// Binary `COPY` of every vector into a table without an index.
    pub insert_seconds: f64,
    /// `CREATE INDEX … USING hnsw` on the filled table.
    pub index_build_seconds: f64,
    pub index_bytes: i64,
    /// Whether `EXPLAIN` of the query shows the HNSW index.
    pub plan_uses_index: bool,
    /// Mean share of the exact `k` nearest found by the index.
    pub recall_at_k: f64,
    /// Latency of one query (batch 1, one connection), milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Queries per second, one after another on one connection.
    pub qps: f64,
}

/// Memory for pgvector's in-memory HNSW build of `n` rows of length `dim`, MiB: per element its
/// vector, 2·m level-0 neighbours (item pointer + distance) and about 200 bytes of element and
/// upper-level overhead, a quarter more for slack; at least 1 GiB.
fn build_memory_mb(n: usize, dim: usize) -> usize {
    let per_element = dim * 4 + 2 * HNSW_M * 16 + 200;
    (n * per_element * 5 / 4 / (1 << 20)).max(1024)
}

/// Runs the benchmark on the database at `url` (its `siamese_*` schema is created when missing;
/// the table `siamese_bench` is made and dropped). `vectors` and `queries` are row-major,
/// `dim` long.
pub fn bench_index(
    url: &str,
    vectors: &[f32],
    dim: usize,
    queries: &[f32],
    k: usize,
    ef_search: usize,
) -> Result<BenchReport> {
    let mut store = PostgresStore::connect(url)?;
    let shown = store.shown.clone();
    let secret = store.secret.clone();
    let e = |err: postgres::Error| error_line(&shown, secret.as_deref(), &err);
    if dim == 0
        || dim > MAX_INDEXED_DIM
        || !vectors.len().is_multiple_of(dim)
        || !queries.len().is_multiple_of(dim)
    {
        return Err(fail(
            &shown,
            format!(
                "bench: {} vector and {} query values do not make rows of length {dim} (1 to \
                 {MAX_INDEXED_DIM})",
                vectors.len(),
                queries.len()
            ),
        ));
    }
    if k == 0 || ef_search == 0 || ef_search > MAX_EF_SEARCH {
        return Err(fail(
            &shown,
            format!(
                "bench: k {k} must be positive and ef_search {ef_search} in 1..={MAX_EF_SEARCH}"
            ),
        ));
    }
    let n = vectors.len() / dim;
    let nq = queries.len() / dim;
    let client = &mut store.client;
    let versions = client
        .query_one(
            "SELECT current_setting('server_version'),
                    (SELECT extversion FROM pg_extension WHERE extname = 'vector')",
            &[],
        )
        .map_err(e)?;
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {TABLE};
             CREATE TABLE {TABLE} (id bigint PRIMARY KEY, collection bigint NOT NULL,
                                   embedding vector NOT NULL)"
        ))
        .map_err(e)?;
    let result = (|| -> Result<BenchReport> {
        let vector_type = client.prepare("SELECT $1::vector").map_err(e)?.params()[0].clone();
        let started = Instant::now();
        let mut tx = client.transaction().map_err(e)?;
        let sink = tx
            .copy_in(&format!(
                "COPY {TABLE} (id, collection, embedding) FROM STDIN (FORMAT binary)"
            ))
            .map_err(e)?;
        let mut writer = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::INT8, vector_type]);
        for (i, row) in vectors.chunks_exact(dim).enumerate() {
            let v = Vector::from(row.to_vec());
            writer.write(&[&(i as i64 + 1), &1i64, &v]).map_err(e)?;
        }
        writer.finish().map_err(e)?;
        tx.commit().map_err(e)?;
        let insert_seconds = started.elapsed().as_secs_f64();

        let maintenance_work_mem_mb = build_memory_mb(n, dim);
        client
            .batch_execute(&format!(
                "SET maintenance_work_mem = '{maintenance_work_mem_mb}MB'"
            ))
            .map_err(e)?;
        let started = Instant::now();
        client
            .batch_execute(&schema::index_sql(TABLE, 1, dim))
            .map_err(e)?;
        let index_build_seconds = started.elapsed().as_secs_f64();
        client
            .batch_execute(&format!(
                "ANALYZE {TABLE}; SET hnsw.ef_search = {}",
                ef_search.max(k)
            ))
            .map_err(e)?;
        let index_bytes: i64 = client
            .query_one(&format!("SELECT pg_relation_size('{TABLE}_hnsw_1')"), &[])
            .map_err(e)?
            .get(0);
        let sql = schema::nearest_sql(TABLE, 1, dim);
        let zero = Vector::from(vec![0f32; dim]);
        let plan: Vec<String> = client
            .query(&format!("EXPLAIN {sql}"), &[&zero, &(k as i64)])
            .map_err(e)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let plan_uses_index = plan.iter().any(|l| l.contains(&format!("{TABLE}_hnsw_1")));
        let statement = client.prepare(&sql).map_err(e)?;
        let mut latencies = Vec::with_capacity(nq);
        let mut found: Vec<Vec<i64>> = Vec::with_capacity(nq);
        let all = Instant::now();
        for q in queries.chunks_exact(dim) {
            let v = Vector::from(q.to_vec());
            let t = Instant::now();
            let rows = client.query(&statement, &[&v, &(k as i64)]).map_err(e)?;
            latencies.push(t.elapsed().as_secs_f64() * 1e3);
            found.push(rows.iter().map(|r| r.get(0)).collect());
        }
        let total = all.elapsed().as_secs_f64();
        let exact = crate::eval::knn::nearest(queries, vectors, dim, Distance::Euclidean, k);
        let hits: usize = exact
            .iter()
            .zip(&found)
            .map(|(truth, got)| {
                truth
                    .iter()
                    .filter(|(j, _)| got.contains(&(*j as i64 + 1)))
                    .count()
            })
            .sum();
        latencies.sort_by(f64::total_cmp);
        let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
        Ok(BenchReport {
            database: shown.clone(),
            server_version: versions.get(0),
            pgvector_version: versions.get::<_, Option<String>>(1).unwrap_or_default(),
            vectors: n,
            dim,
            queries: nq,
            k,
            m: HNSW_M,
            ef_construction: HNSW_EF_CONSTRUCTION,
            ef_search: ef_search.max(k),
            maintenance_work_mem_mb,
            insert_seconds,
            index_build_seconds,
            index_bytes,
            plan_uses_index,
            recall_at_k: hits as f64 / (nq.max(1) * k.min(n)) as f64,
            p50_ms: if nq > 0 { pct(0.5) } else { 0.0 },
            p99_ms: if nq > 0 { pct(0.99) } else { 0.0 },
            qps: if total > 0.0 { nq as f64 / total } else { 0.0 },
        })
    })();
    let dropped = client
        .batch_execute(&format!("DROP TABLE IF EXISTS {TABLE}"))
        .map_err(e);
    let report = result?;
    dropped?;
    Ok(report)
}

/// A server of `scripts/pg-server serve` for as long as this value lives: dropping it closes the
/// script's standard input, which stops the server and removes its folder (so does this
/// process dying).
pub struct TemporaryServer {
    url: String,
    child: std::process::Child,
}

impl TemporaryServer {
    /// Starts the script at `script` with a server folder `dir` (made by the script; it must
    /// not hold anything else, as it is removed at the end).
    pub fn start(script: &std::path::Path, dir: &std::path::Path) -> Result<Self> {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let command = format!("{} serve {}", script.display(), dir.display());
        let mut child = Command::new("bash")
            .arg(script)
            .arg("serve")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| crate::Error::Command {
                command: command.clone(),
                message: e.to_string(),
            })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let url = line.trim().to_string();
        if !url.starts_with("postgres://") {
            drop(child.stdin.take());
            let _ = child.wait();
            return Err(crate::Error::Command {
                command,
                message: "no server URL printed (see the message above)".into(),
            });
        }
        Ok(TemporaryServer { url, child })
    }

    /// The superuser URL of the server.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TemporaryServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}
