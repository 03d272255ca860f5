//! Managing servers from the command line (`serversan server …`).
