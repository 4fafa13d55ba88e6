//! Run with: cargo run --example embed
//!
//! Freshet as a library: a project with a CSV source, a SQL asset and a Rust asset, loaded,
//! materialized and previewed from Rust, in a temporary folder.

use datafusion::arrow::util::pretty::pretty_format_batches;
use freshet_core::{
    AssetContext, Catalogue, Catalogues, Executor, Overrides, PlanRequest, Project, RustAsset,
    Store,
};

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let write = |path: &str, text: &str| -> std::io::Result<()> {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap_or(dir.path()))?;
        std::fs::write(path, text)
    };
    write(
        "freshet.toml",
        "[project]\nname = \"embedded\"\ncatalogues = [\"example\"]\n\n[sources.raw_numbers]\npath = \"numbers.csv\"\n",
    )?;
    write("numbers.csv", "n\n1\n2\n3\n4\n5\n6\n")?;
    write("sql/evens.sql", "SELECT n FROM raw_numbers WHERE n % 2 = 0")?;

    let catalogues = Catalogues::new().with(
        Catalogue::new("example").asset(
            RustAsset::new("even_total")
                .deps(["evens"])
                .code_version("1")
                .compute(|ctx: AssetContext| async move {
                    ctx.sql("SELECT sum(n) AS total FROM evens").await
                }),
        ),
    );

    tokio::runtime::Runtime::new()?.block_on(async {
        let project = Project::load(dir.path(), &catalogues, &Overrides::default())?;
        let store = Store::open(project.database_url()).await?;
        let executor = Executor::new(project, store)?;
        let report = executor.materialize(&PlanRequest::stale(), &()).await?;
        println!("materialized {} assets", report.materialized());
        let rows = executor.preview(&"even_total".parse()?, 1).await?;
        println!("{}", pretty_format_batches(&rows)?);
        Ok(())
    })
}
