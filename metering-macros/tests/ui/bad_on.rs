use metering::meter;

#[meter(resource = "billing", on = "sometimes")]
fn invoice(tenant_id: &str) -> Result<(), ()> {
    Ok(())
}

fn main() {}
