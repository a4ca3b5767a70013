//! Rust types generated from the protobuf definitions in `proto/`: the messages of every bus
//! topic. Generated code only; logic about these messages lives with their producers and
//! consumers.

/// `shrike.bus.v1`: bus messages.
#[allow(missing_docs, clippy::all)]
pub mod bus {
    include!(concat!(env!("OUT_DIR"), "/shrike.bus.v1.rs"));
}
