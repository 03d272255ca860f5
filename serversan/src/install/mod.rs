//! `GET /install.sh`, `/install.ps1` and `/agent/<os>-<arch>`.
