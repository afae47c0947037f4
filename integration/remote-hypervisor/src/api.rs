//! `hypervisor.Hypervisor`, generated from `proto/hypervisor.proto`.

#[allow(clippy::all, dead_code, missing_docs, non_camel_case_types, non_snake_case, non_upper_case_globals, unused_imports, unused_mut, unused_results, trivial_casts, unknown_lints, renamed_and_removed_lints)]
#[rustfmt::skip]
pub mod hypervisor {
    //! Messages of `hypervisor` (rust-protobuf).
    include!(concat!(env!("OUT_DIR"), "/hypervisor.rs"));
}

#[allow(clippy::all, dead_code, missing_docs, non_camel_case_types, non_snake_case, non_upper_case_globals, unused_imports, unused_mut, unused_results, trivial_casts, unknown_lints, renamed_and_removed_lints)]
#[rustfmt::skip]
pub mod hypervisor_ttrpc {
    //! ttrpc client, server trait and registration of `hypervisor.Hypervisor`.
    include!(concat!(env!("OUT_DIR"), "/hypervisor_ttrpc.rs"));
}

pub use hypervisor::{
    CreateVMRequest, CreateVMResponse, StartVMRequest, StartVMResponse, StopVMRequest,
    StopVMResponse, VersionRequest, VersionResponse,
};
#[cfg(test)]
pub use hypervisor_ttrpc::HypervisorClient;
pub use hypervisor_ttrpc::{create_hypervisor, Hypervisor};

/// Full ttrpc service name, as Kata's client calls it.
#[cfg(test)]
pub const SERVICE: &str = "hypervisor.Hypervisor";

/// The methods of [`SERVICE`] (a test checks the generated server registers
/// exactly these: one left to a generated default would answer NOT_FOUND).
#[cfg(test)]
pub const METHODS: &[&str] = &["CreateVM", "StartVM", "StopVM", "Version"];
