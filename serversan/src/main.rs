fn main() -> std::process::ExitCode {
    serversan::cli::run()
}
