//! Nothing to link: this package holds the tests of the repository itself
//! (`tests/`): documents, Nix files and dependency policy, which no crate
//! owns. The tests that run the `vmbench` binary (the Nix stand-ins that
//! build and run it, the Ansible fleet) stay with the binary in
//! `crates/cli/tests`.
