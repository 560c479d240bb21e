use metering::meter;

#[meter(resource = "  ")]
fn invoice(tenant_id: &str) {}

fn main() {}
