//! `make proto` runs this to regenerate the Rust code of the Taskloom contracts.
//! Usage: taskloom-protogen <proto root> <out dir>

use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = env::args().collect();
    let [_, proto_root, out_dir] = args.as_slice() else {
        return Err("usage: taskloom-protogen <proto root> <out dir>".into());
    };
    let proto_dir = PathBuf::from(proto_root).join("taskloom/v1");
    let mut protos: Vec<PathBuf> = fs::read_dir(&proto_dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    protos.sort();
    fs::create_dir_all(out_dir)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .out_dir(out_dir)
        .file_descriptor_set_path(PathBuf::from(out_dir).join("taskloom_descriptor.bin"))
        .compile_protos(&protos, &[PathBuf::from(proto_root)])?;
    Ok(())
}
