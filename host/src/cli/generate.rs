//! `completions` and `man`: generated from the same clap definition the
//! parser uses, so they cannot drift from it.

use std::io::Write as _;

use super::CliResult;

/// The shells `nfvhost completions` writes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    fn generator(self) -> clap_complete::Shell {
        match self {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// The completion script for `shell`.
fn completion_script(shell: Shell) -> Vec<u8> {
    let mut cmd = super::command();
    let mut out = Vec::new();
    clap_complete::generate(shell.generator(), &mut cmd, "nfvhost", &mut out);
    out
}

/// The man page, in roff.
fn man_page() -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(super::command()).render(&mut out)?;
    Ok(out)
}

pub fn completions(shell: Shell) -> CliResult {
    std::io::stdout().write_all(&completion_script(shell))?;
    Ok(())
}

pub fn man() -> CliResult {
    std::io::stdout().write_all(&man_page()?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The user-facing subcommands (hidden internal ones left out).
    fn subcommands() -> Vec<String> {
        let cmd = super::super::command();
        let names: Vec<String> = cmd
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
            .map(|c| c.get_name().to_owned())
            .collect();
        assert!(names.len() >= 10, "{names:?}");
        names
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        super::super::command().debug_assert();
    }

    #[test]
    fn every_completion_script_names_every_subcommand() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = String::from_utf8(completion_script(shell)).unwrap();
            for name in subcommands() {
                assert!(text.contains(&name), "{shell:?} completion lacks `{name}`");
            }
        }
    }

    #[test]
    fn bash_accepts_the_bash_completion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nfvhost.bash");
        std::fs::write(&path, completion_script(Shell::Bash)).unwrap();
        let status = std::process::Command::new("bash")
            .arg("-n")
            .arg(&path)
            .status()
            .expect("bash is installed");
        assert!(status.success(), "bash -n rejected the completion script");
    }

    #[test]
    fn man_page_names_every_subcommand() {
        let text = String::from_utf8(man_page().unwrap()).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH nfvhost"),
            "{}",
            &text[..200]
        );
        for name in subcommands() {
            assert!(text.contains(&name), "man page lacks `{name}`");
        }
    }
}
