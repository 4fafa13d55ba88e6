//! `freshet init`: writes a small working project to start from.

use std::path::Path;

use anyhow::{Context as _, bail};

/// The files of a new project, relative to its folder.
const FILES: &[(&str, &str)] = &[
    ("freshet.toml", include_str!("template/freshet.toml")),
    ("data/sales.csv", include_str!("template/data/sales.csv")),
    (
        "sql/sales_by_store.sql",
        include_str!("template/sql/sales_by_store.sql"),
    ),
    (
        "sql/daily_sales.sql",
        include_str!("template/sql/daily_sales.sql"),
    ),
    (".gitignore", ".freshet/\n"),
];

/// Creates the project in `dir`, refusing to overwrite any file that exists.
pub(crate) fn init(dir: &Path) -> anyhow::Result<()> {
    for (path, _) in FILES {
        let target = dir.join(path);
        if target.exists() {
            bail!(
                "{} already exists; freshet init writes only new files",
                target.display()
            );
        }
    }
    for (path, text) in FILES {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&target, text)
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    let shown = dir.display();
    eprintln!("created a Freshet project in {shown}");
    eprintln!("next: freshet --project {shown} materialize");
    Ok(())
}
