//! Storage on SQLite or MySQL/MariaDB.
