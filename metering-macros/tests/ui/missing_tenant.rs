use metering::meter;

#[meter(resource = "billing")]
fn invoice(org: &str) {}

fn main() {}
