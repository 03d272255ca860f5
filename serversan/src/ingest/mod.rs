//! `POST /v1/report`: authenticate, validate and store agent reports.
