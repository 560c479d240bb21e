#![doc = include_str!("../README.md")]

mod args;
mod expand;

use proc_macro::TokenStream;

/// Meters every call of a function: one usage event per call (or per successful call)
/// goes to the process-wide recorder. See the [crate docs](crate) for the options, the
/// generated code and what it costs.
///
/// ```
/// use metering::meter;
///
/// #[meter(resource = "billing", feature = "invoice_generate")]
/// fn generate_invoice(tenant_id: &str, lines: usize) -> Result<String, String> {
///     Ok(format!("{tenant_id}: {lines} lines"))
/// }
/// # assert!(generate_invoice("org_1", 3).is_ok());
/// ```
#[proc_macro_attribute]
pub fn meter(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut args = args::Args::default();
    let parser = syn::meta::parser(|meta| args.parse_option(&meta));
    if let Err(error) = syn::parse::Parser::parse(parser, attr) {
        return error.to_compile_error().into();
    }
    let function = match syn::parse::<syn::ItemFn>(item) {
        Ok(function) => function,
        Err(error) => {
            let error = syn::Error::new(
                error.span(),
                "#[meter] goes on a function or method with a body",
            );
            return error.to_compile_error().into();
        }
    };
    match expand::expand(args, function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}
