//! Misuse of `#[meter]` fails to compile with a clear message.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
