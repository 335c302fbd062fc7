//! Integration tests: a real hookrelay on ephemeral loopback ports, real
//! RocksDB in a temp dir, real upstream receivers, real HTTP. They read like
//! the README's tour.

mod api;
mod backup;
mod bad_input;
mod bin;
mod browser;
mod bulk;
mod cli;
mod config_file;
mod curl;
mod dashboard;
mod descriptors;
mod forward;
mod guard;
mod loops;
mod persistence;
mod policy;
mod queue;
mod queue_crash;
mod replay_state;
mod resign_vectors;
mod shutdown;
mod signatures;
mod support;
mod tidy;
mod tls;
