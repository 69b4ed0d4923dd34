//! The `Fenced` proof cannot be made outside the fence module: each file under
//! tests/compile-fail tries, and must not compile.

#[test]
fn a_fencing_proof_cannot_be_forged_outside_the_fence_module() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/compile-fail/*.rs");
}
