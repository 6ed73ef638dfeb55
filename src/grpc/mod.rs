//! The gRPC layer: generated types, conversions, error mapping and the
//! `TokenService` handlers.

mod convert;
mod handlers;
mod metadata;
mod status;

pub use convert::token as token_message;
pub use handlers::TokenServiceHandlers;
pub use status::code_name;

/// Types and stubs generated from `proto/tokens/v1/token_service.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("tokens.v1");

    /// Encoded descriptor set of the contract and its imports, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/tokens_descriptor.bin"));
}
