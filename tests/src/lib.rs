//! Test support for end-to-end tests of the workspace's binaries.
