//! `lbctl`: the command-line client of lbfwd's control socket.

fn main() {
    eprintln!("lbctl: coming with the control-plane issue");
    std::process::exit(1);
}
