//! The demo shop's Rust assets: the steps plain SQL does awkwardly.

mod sessions;

use freshet_core::Catalogue;

/// The catalogue the demo project (`assets/freshet.toml`) opts into with `catalogues = ["demo"]`.
pub fn catalogue() -> Catalogue {
    Catalogue::new("demo").asset(sessions::web_sessions())
}
