//! Configuration: one typed struct from a TOML file and `SERVERSAN_*` variables.
