//! No code: this crate exists for its `Cargo.toml`, which aligns the features of the dependencies
//! the workspace's members share (see there).
