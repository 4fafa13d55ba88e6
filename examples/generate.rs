//! Run with: cargo run --release --example generate -- DIR [ORDERS] [SEED]
//!
//! Writes ORDERS deterministic orders (default 1,000,000) and their customers as Parquet into
//! DIR: `orders.parquet` and `customers.parquet`, the data the ETL benchmark reads.

use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: generate DIR [ORDERS] [SEED]";
    let dir = std::path::PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!(usage))?);
    let number = |arg: Option<String>, default: u64| -> anyhow::Result<u64> {
        arg.map_or(Ok(default), |a| {
            a.replace('_', "")
                .parse()
                .map_err(|_| anyhow::anyhow!("{usage}: {a:?} is not a number"))
        })
    };
    let orders = number(args.next(), 1_000_000)?;
    let seed = number(args.next(), 42)?;
    let started = Instant::now();
    freshet_assets::generate::write_shop(&dir, orders, seed)?;
    println!(
        "wrote {orders} orders and {} customers to {} in {:.1} s",
        freshet_assets::generate::customer_count(orders),
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
