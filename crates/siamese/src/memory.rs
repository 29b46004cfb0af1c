//! What memory this process may use, and sizes in words: the limit every up-front memory check
//! (a training step, a clustering matrix) compares its estimate with.

use crate::{Error, Result};

/// Memory this process may use: `$SIAMESE_MAX_MEMORY` (bytes, or with a K/M/G suffix) when set,
/// else the kernel's `MemAvailable`; `None` when neither can be read.
pub fn memory_limit() -> Result<Option<u64>> {
    if let Ok(v) = std::env::var("SIAMESE_MAX_MEMORY") {
        return parse_bytes(&v).map(Some).ok_or_else(|| {
            Error::config(
                "SIAMESE_MAX_MEMORY",
                format!("{v:?} is not a size like 8G, 512M or 1000000"),
            )
        });
    }
    let Ok(meminfo) = std::fs::read_to_string("/proc/meminfo") else {
        return Ok(None);
    };
    Ok(meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024))
}

/// `8G`, `512M`, `64K` or plain bytes.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let (number, scale) = match t.chars().last()? {
        'k' | 'K' => (&t[..t.len() - 1], 1u64 << 10),
        'm' | 'M' => (&t[..t.len() - 1], 1 << 20),
        'g' | 'G' => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let value: f64 = number.trim().parse().ok()?;
    (value.is_finite() && value >= 0.0).then_some((value * scale as f64) as u64)
}

pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}
