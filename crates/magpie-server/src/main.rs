//! The `magpie` binary.

fn main() -> std::process::ExitCode {
    magpie_server::cli::run()
}
