//! `edit`: the object as YAML in `$KUBE_EDITOR` / `$EDITOR` (default `vi`), then the edited
//! object written back (with its resourceVersion, so a concurrent change is refused).

use std::io::Write;
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use kube::api::{DynamicObject, PostParams};
use serde_json::Value;

use crate::{output, resources, Global};

/// The comment kubectl puts above the object.
const HEADER: &str =
    "# Please edit the object below. Lines beginning with a '#' will be ignored,\n\
# and an empty file will abort the edit. If an error occurs while saving this file will be\n\
# reopened with the relevant failures.\n#\n";

#[derive(Debug, Args)]
pub struct EditArgs {
    /// TYPE NAME or TYPE/NAME.
    #[arg(required = true)]
    pub args: Vec<String>,
}

/// The editor command as kubectl splits it: words on spaces, or `sh -c` when it has quotes or
/// backslashes.
pub fn editor_command(editor: &str, file: &str) -> Command {
    if editor.contains(['"', '\'', '\\']) {
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!("{editor} {file}"));
        return c;
    }
    let mut words = editor.split(' ').filter(|w| !w.is_empty());
    let mut c = Command::new(words.next().unwrap_or("vi"));
    c.args(words).arg(file);
    c
}

/// The edited text without its comment lines.
pub fn strip_comments(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

pub async fn edit(g: &Global, a: EditArgs) -> Result<()> {
    let editor = std::env::var("KUBE_EDITOR")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let conn = resources::connect(g).await?;
    for (r, name) in resources::targets(&a.args)? {
        let name = name.ok_or_else(|| {
            anyhow!("error: resource(s) were provided, but no name was specified")
        })?;
        let path = resources::path(r, Some(&conn.namespace), Some(&name));
        let mut obj = output::fetch_json(&conn.client, &path).await?;
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
        }
        let original = output::yaml(&obj)?;
        let file =
            std::env::temp_dir().join(format!("pctl-edit-{}-{name}.yaml", std::process::id()));
        let file_name = file.display().to_string();
        std::fs::File::create(&file)
            .and_then(|mut f| f.write_all(format!("{HEADER}{original}").as_bytes()))
            .with_context(|| format!("writing {file_name}"))?;
        let status = editor_command(&editor, &file_name)
            .status()
            .with_context(|| format!("running the editor {editor:?}"))?;
        if !status.success() {
            bail!("error: there was a problem with the editor {editor:?}");
        }
        let edited =
            std::fs::read_to_string(&file).with_context(|| format!("reading {file_name}"))?;
        let edited = strip_comments(&edited);
        if edited.trim().is_empty() {
            let _ = std::fs::remove_file(&file);
            bail!("error: Edit cancelled, saved file was empty.");
        }
        if edited == original {
            let _ = std::fs::remove_file(&file);
            errln!("Edit cancelled, no changes made.");
            continue;
        }
        let mut docs = crate::yaml::documents(&edited)
            .map_err(|e| anyhow!("error: the edited file is not valid YAML: {e}; a copy of your changes has been stored to \"{file_name}\""))?;
        let new = match docs.len() {
            1 => docs.remove(0),
            _ => bail!("error: the edited file must hold one object; a copy of your changes has been stored to \"{file_name}\""),
        };
        let api = resources::dynamic(&conn, r, Some(&conn.namespace));
        let d: DynamicObject = serde_json::from_value(new)?;
        match api.replace(&name, &PostParams::default(), &d).await {
            Ok(_) => {
                let _ = std::fs::remove_file(&file);
                outln!("{} edited", resources::display_name(r, &name));
            }
            Err(e) => {
                errln!("{}", output::error_text(&anyhow::Error::from(e)));
                bail!("error: A copy of your changes has been stored to \"{file_name}\"");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editors_and_comments() {
        let c = editor_command("code --wait", "/tmp/f.yaml");
        assert_eq!(c.get_program(), "code");
        assert_eq!(c.get_args().collect::<Vec<_>>(), ["--wait", "/tmp/f.yaml"]);
        let c = editor_command("sed -i 's/a/b/'", "/tmp/f.yaml");
        assert_eq!(c.get_program(), "sh");
        assert_eq!(strip_comments("# x\na: 1\n#y\nb: 2"), "a: 1\nb: 2\n");
    }
}
