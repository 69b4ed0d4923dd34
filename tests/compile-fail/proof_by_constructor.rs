// Nor can it call the constructor the fence module's procedures use.
use hamn::fence::{FenceMethod, Fenced};

fn main() {
    let _forged = Fenced::new(
        "mn1",
        FenceMethod::AdminOverride {
            statement: "trust me".into(),
        },
    );
}
