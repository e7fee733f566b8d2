//! `ota completions SHELL` (clap_complete) and `ota man` (clap_mangen): generated from the same
//! command definition as the parser, so they cannot drift from it.

use std::path::PathBuf;

use clap_complete::Shell;
use serde_json::json;

use crate::out::{CliError, Outcome};

/// `ota completions`.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  ota completions bash > ~/.local/share/bash-completion/completions/ota
  ota completions zsh > \"${fpath[1]}/_ota\"
  ota completions fish > ~/.config/fish/completions/ota.fish")]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: Shell,
}

/// `ota man`.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  ota man | man -l -
  ota man --out /usr/local/share/man/man1")]
pub struct ManArgs {
    /// Write `ota.1` and one page per subcommand (`ota-pack.1`...) into this directory,
    /// instead of printing `ota.1`.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The completion script for a shell.
pub fn completions(a: &CompletionsArgs, mut cmd: clap::Command) -> Result<Outcome, CliError> {
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "ota", &mut script);
    let script = String::from_utf8(script)
        .map_err(|e| CliError::usage(format!("the completion script is not UTF-8: {e}")))?;
    Ok(Outcome::ok(
        script.clone(),
        json!({"shell": a.shell.to_string(), "script": script}),
    ))
}

/// The man page, printed or written with every subcommand's.
pub fn man(a: &ManArgs, cmd: clap::Command) -> Result<Outcome, CliError> {
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).map_err(|e| CliError::io(dir, e))?;
        clap_mangen::generate_to(cmd, dir).map_err(|e| CliError::io(dir, e))?;
        let mut pages: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| CliError::io(dir, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("ota") && n.ends_with(".1"))
            .collect();
        pages.sort();
        return Ok(Outcome::ok(
            format!("wrote {} man pages to {}", pages.len(), dir.display()),
            json!({"dir": dir, "pages": pages}),
        ));
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut page)
        .map_err(|e| CliError::usage(format!("rendering the man page: {e}")))?;
    let page = String::from_utf8_lossy(&page).into_owned();
    Ok(Outcome::ok(page.clone(), json!({"page": page})))
}
