//! The vector instruction set our own loops run with, chosen at run time: the release binary is
//! built for baseline x86-64, so a loop compiled plainly uses SSE2 only. [`vectorize`] runs a
//! closure inside a function compiled for AVX-512 (F/BW/VL/DQ) or AVX2 + FMA when the CPU has
//! it, so the compiler inlines and vectorises the closure's loops for that level; the `gemm`
//! crate does the same for its micro-kernels.
//!
//! `SIAMESE_SIMD=portable|avx2|avx512` lowers the level (a level above the CPU's is refused and
//! the CPU's own is used), so tests compare each path with the portable one on the same machine.

use std::sync::atomic::{AtomicU8, Ordering};

/// A vector instruction level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// What the compiler's target gives (SSE2 on x86-64).
    Portable,
    /// AVX2 + FMA (256-bit).
    Avx2,
    /// AVX-512 F, BW, VL and DQ (512-bit).
    Avx512,
}

impl SimdLevel {
    /// The name used by `SIAMESE_SIMD` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Portable => "portable",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
        }
    }

    fn parse(name: &str) -> Option<SimdLevel> {
        match name.trim() {
            "portable" => Some(SimdLevel::Portable),
            "avx2" => Some(SimdLevel::Avx2),
            "avx512" => Some(SimdLevel::Avx512),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }
}

/// Every level this CPU runs, portable first (the paths tests compare one by one).
pub fn cpu_levels() -> Vec<SimdLevel> {
    [SimdLevel::Portable, SimdLevel::Avx2, SimdLevel::Avx512]
        .into_iter()
        .filter(|l| *l <= cpu_level())
        .collect()
}

/// The best level this CPU runs.
pub fn cpu_level() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
        {
            return SimdLevel::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return SimdLevel::Avx2;
        }
    }
    SimdLevel::Portable
}

/// 0: not decided yet.
static LEVEL: AtomicU8 = AtomicU8::new(0);

/// The level [`vectorize`] uses: `SIAMESE_SIMD` (read once) capped at the CPU's, else the CPU's.
pub fn level() -> SimdLevel {
    match LEVEL.load(Ordering::Relaxed) {
        1 => SimdLevel::Portable,
        2 => SimdLevel::Avx2,
        3 => SimdLevel::Avx512,
        _ => {
            let cpu = cpu_level();
            let chosen = std::env::var("SIAMESE_SIMD")
                .ok()
                .and_then(|v| SimdLevel::parse(&v))
                .map_or(cpu, |asked| asked.min(cpu));
            LEVEL.store(chosen.code(), Ordering::Relaxed);
            chosen
        }
    }
}

/// Sets the level for the whole process (capped at the CPU's); returns the level now in force.
pub fn set_level(asked: SimdLevel) -> SimdLevel {
    let chosen = asked.min(cpu_level());
    LEVEL.store(chosen.code(), Ordering::Relaxed);
    chosen
}

/// The CPU features that matter to our kernels and to the `gemm` crate's, as `/proc/cpuinfo`
/// names them, for reports.
pub fn cpu_flags() -> Vec<&'static str> {
    let mut flags = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! check {
            ($($feature:tt => $name:expr),*) => {
                $(if std::arch::is_x86_feature_detected!($feature) { flags.push($name); })*
            };
        }
        check!(
            "avx2" => "avx2", "fma" => "fma", "avx512f" => "avx512f", "avx512bw" => "avx512bw",
            "avx512vl" => "avx512vl", "avx512dq" => "avx512dq", "avx512vnni" => "avx512_vnni",
            "avx512bf16" => "avx512_bf16", "avx512fp16" => "avx512_fp16"
        );
    }
    // AMX has no stable run-time check in std: read the kernel's list.
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let listed = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .unwrap_or_default()
        .to_string();
    for name in ["amx_tile", "amx_bf16"] {
        if listed.split_whitespace().any(|f| f == name) {
            flags.push(name);
        }
    }
    flags
}

/// Runs `f` compiled for [`level`]: `f`'s loops (and the `#[inline(always)]` helpers they call)
/// are inlined into a function with that level's target features and vectorised for it.
#[inline(always)]
pub fn vectorize<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        match level() {
            // SAFETY: `level` never exceeds what the CPU reports (`cpu_level`).
            SimdLevel::Avx512 => return unsafe { with_avx512(f) },
            SimdLevel::Avx2 => return unsafe { with_avx2(f) },
            SimdLevel::Portable => {}
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}
