use metering::meter;

#[meter(resource = "billing")]
struct Invoice;

fn main() {}
