//! Compiles `proto/` with protox (pure Rust, no `protoc` needed) and generates prost types.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not baked in with `env!`: a build script binary compiled for another
    // checkout sharing the target directory must not look for the protos there.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let file = root.join("shrike/bus/v1/bus.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    println!("cargo:rerun-if-changed={}", root.display());
    let descriptors = protox::compile([&file], [&root])?;
    // A raw event's payload is a slice of the request body, and later of the bus record: no copies.
    prost_build::Config::new()
        .bytes([".shrike.bus.v1.RawEvent.payload"])
        .compile_fds(descriptors)?;
    Ok(())
}
