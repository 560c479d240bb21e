use metering::meter;

#[meter(resource = "billing", quantity = "three")]
fn invoice(tenant_id: &str) {}

fn main() {}
