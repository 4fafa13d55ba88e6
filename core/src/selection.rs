//! Asset selections (being written).
