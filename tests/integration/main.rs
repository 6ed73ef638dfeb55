//! Integration tests over real gRPC against a server on a loopback port,
//! run once per storage engine (see `common`).

#![allow(unreachable_pub, dead_code)]

mod common;

mod binary;
mod crash;
mod expiry;
mod fuzz_corpus;
mod hostile;
mod hot_path;
mod input;
mod lifecycle;
mod outage;
mod pagination;
mod permissions;
mod process;
mod readonly;
mod revocation;
mod rotation;
mod shutdown;
mod storage;
mod tls;
mod usage;
