//! Generates `runtimeoptions.v1.Options` from `proto/runtimeoptions.proto`
//! with the pure-Rust parser (no `protoc` needed).

fn main() {
    println!("cargo:rerun-if-changed=proto/runtimeoptions.proto");
    protobuf_codegen::Codegen::new()
        .pure()
        .include("proto")
        .input("proto/runtimeoptions.proto")
        .cargo_out_dir("protos")
        .run_from_script();
}
