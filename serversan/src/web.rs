//! The HTTP application: routes, listener, TLS and timeouts.
