use metering::meter;

#[meter(resource = "billing", feture = "typo")]
fn invoice(tenant_id: &str) {}

fn main() {}
