//! The `hookrelay` binary: everything lives in the library (`cli::main`).

fn main() -> std::process::ExitCode {
    hookrelay::cli::main()
}
