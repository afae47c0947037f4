//! `kata-cr-init`: see [`agent_ext::init`].

fn main() {
    std::process::exit(agent_ext::init::main());
}
