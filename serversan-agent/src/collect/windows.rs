//! Windows: filled in below.
