use metering::meter;

#[meter(resource = "billing", resource = "other")]
fn invoice(tenant_id: &str) {}

fn main() {}
