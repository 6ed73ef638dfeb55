//! tokend: a personal access token service.
//!
//! Layers, from the inside out: [`domain`] holds the token rules with no
//! I/O, [`storage`] persists records through sea-orm, [`service`] applies
//! permissions and runs the four operations, [`grpc`] maps them to the
//! protobuf contract, and [`app`] wires the server together.

pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
pub mod grpc;
pub mod metrics;
pub mod service;
pub mod storage;
pub mod telemetry;
pub mod tls;
