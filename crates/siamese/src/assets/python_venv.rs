//! The benchmarks' Python peers: one virtual environment per peer under the asset home, with
//! pinned packages installed by name from a requirements text, once (a marker file holds the
//! text last installed, so a changed pin reinstalls).

use std::path::PathBuf;
use std::process::Command;

use crate::{Error, Result};

/// The Python of `<home>/<name>`, created and given `requirements` when not done yet; `log`
/// hears about the one-time work (`what` names the peer).
pub fn peer_venv(
    name: &str,
    requirements: &str,
    what: &str,
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf> {
    let home = super::home();
    let venv = home.join(name);
    let python = venv.join("bin").join("python");
    let marker = venv.join("installed-requirements.txt");
    if python.exists() && std::fs::read_to_string(&marker).ok().as_deref() == Some(requirements) {
        return Ok(python);
    }
    std::fs::create_dir_all(&home).map_err(|e| Error::io(&home, e))?;
    if !python.exists() {
        log(&format!("creating the {what} virtual environment (once)"));
        super::run_command(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            &home,
        )?;
    }
    let wanted = venv.join("requirements.txt");
    crate::output::write_atomic(&wanted, requirements.as_bytes())?;
    let pins: Vec<&str> = requirement_lines(requirements).collect();
    log(&format!("installing {} (once)", pins.join(" ")));
    super::run_command(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "-q",
                "-r",
            ])
            .arg(&wanted),
        &venv,
    )?;
    crate::output::write_atomic(&marker, requirements.as_bytes())?;
    Ok(python)
}

/// The `name==version` lines of a requirements text.
pub fn requirement_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}
