use metering::meter;

#[meter(feature = "invoice")]
fn invoice(tenant_id: &str) {}

fn main() {}
