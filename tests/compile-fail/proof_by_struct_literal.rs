// A storage write needs a `Fenced` proof; code outside the fence module cannot write one
// down by hand: its fields are private.
use hamn::fence::{FenceMethod, Fenced};

fn main() {
    let _forged = Fenced {
        node: "mn1".to_string(),
        method: FenceMethod::AdminOverride {
            statement: "trust me".into(),
        },
        confirmed_at: std::time::SystemTime::now(),
    };
}
