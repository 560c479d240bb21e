use metering::meter;

#[meter(resource = "billing", tenant = org_id)]
fn invoice(org_id: u64) {}

fn main() {}
