use metering::meter;

#[meter(resource = "billing", on = "success")]
fn invoice(tenant_id: &str) -> u32 {
    1
}

fn main() {}
