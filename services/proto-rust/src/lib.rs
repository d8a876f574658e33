//! Generated gRPC code for `taskloom.v1`. Never edit `src/gen/`: run `make proto`.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    include!("gen/taskloom.v1.rs");
}

/// Encoded `FileDescriptorSet` of every Taskloom proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("gen/taskloom_descriptor.bin");
