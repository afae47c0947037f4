//! Generates the `hypervisor.Hypervisor` (Kata remote hypervisor) messages and ttrpc client/server from
//! `proto/hypervisor.proto` with the pure-Rust parser (no `protoc` needed).

fn main() {
    println!("cargo:rerun-if-changed=proto/hypervisor.proto");
    let out_dir =
        std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    ttrpc_codegen::Codegen::new()
        .out_dir(&out_dir)
        .input("proto/hypervisor.proto")
        .include("proto")
        .rust_protobuf()
        .customize(ttrpc_codegen::Customize {
            async_all: true,
            ..Default::default()
        })
        .rust_protobuf_customize(ttrpc_codegen::ProtobufCustomize::default().gen_mod_rs(false))
        .run()
        .expect("generating the hypervisor API from proto/hypervisor.proto");
    // The generated files start with inner attributes (`#![allow(..)]`) and inner doc comments,
    // which `include!` inside a module does not accept: drop them; the
    // including module carries the allows instead.
    for name in ["hypervisor.rs", "hypervisor_ttrpc.rs"] {
        let path = out_dir.join(name);
        let text = std::fs::read_to_string(&path).expect("reading generated code");
        let kept: String = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("#!["))
            .map(|line| match line.strip_prefix("//!") {
                Some(rest) => format!("//{rest}\n"),
                None => format!("{line}\n"),
            })
            .collect();
        std::fs::write(&path, kept).expect("writing generated code");
    }
}
