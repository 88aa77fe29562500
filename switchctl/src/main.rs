//! `switchctl`: not built yet; see the project's issues.

fn main() {
    eprintln!("switchctl: not implemented yet");
    std::process::exit(2);
}
