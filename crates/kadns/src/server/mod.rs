//! The stub's own DNS listeners.

// The DoH request/response functions are called by the DoH listener, which
// sits on the listener layer (interfaces.md A) once it is merged.
#[allow(dead_code)]
pub(crate) mod doh;
pub(crate) mod tls_config;
