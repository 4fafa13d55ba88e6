//! The demo asset catalogue and the `freshet` binary's entry point.
//!
//! The demo project is this crate's folder: `freshet.toml`, SQL assets under `sql/`, raw data
//! under `data/`, and the Rust assets of [`demo`], which the project includes by name.

pub mod demo;
pub mod generate;

use freshet_core::Catalogues;

/// Every Rust catalogue compiled into the `freshet` binary. A project uses one only when its
/// `freshet.toml` names it, so a SQL-only project lists only its own assets.
pub fn catalogues() -> Catalogues {
    Catalogues::new().with(demo::catalogue())
}
