//! `--precision` of the commands that run the kernels: parsing, and the fp32 fallback (with one
//! warning line) on CPUs without AMX.

use siamese::kernels::Precision;

/// `--precision`: `f32` or `bf16`.
pub fn parse_precision(text: &str) -> Result<Precision, String> {
    match text {
        "f32" | "fp32" => Ok(Precision::F32),
        "bf16" => Ok(Precision::Bf16),
        other => Err(format!("{other:?} is not a precision: want f32 or bf16")),
    }
}

/// `asked`, or fp32 with a warning on stderr where bf16 cannot run.
pub fn usable(asked: Precision, what: &str) -> Precision {
    if asked == Precision::Bf16 && !siamese::kernels::gemm_bf16::available() {
        eprintln!(
            "warning: --precision bf16 needs AMX tiles (amx_bf16), which this CPU or kernel does \
             not offer: {what} in fp32"
        );
        return Precision::F32;
    }
    asked
}
