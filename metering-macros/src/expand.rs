//! The code `#[meter]` turns a function into.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr, Pat, ReturnType, Type};

use crate::args::{Args, On};

/// Whether the return type is spelled `...Result<...>` (`Result`, `io::Result`,
/// `anyhow::Result`): such functions are metered only on `Ok` unless `on = "always"`.
fn returns_result(output: &ReturnType) -> bool {
    match output {
        ReturnType::Type(_, ty) => match &**ty {
            Type::Path(path) => path
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "Result"),
            _ => false,
        },
        ReturnType::Default => false,
    }
}

/// Whether a type mentions `impl Trait`, which a `let` annotation cannot name.
fn mentions_impl(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    syn::visit::Visit::visit_type(&mut finder, ty);
    finder.0
}

/// Whether the function has an argument bound to the plain name `tenant_id`.
fn has_tenant_id_arg(function: &ItemFn) -> bool {
    function.sig.inputs.iter().any(|arg| match arg {
        FnArg::Typed(typed) => matches!(&*typed.pat, Pat::Ident(p) if p.ident == "tenant_id"),
        FnArg::Receiver(_) => false,
    })
}

pub(crate) fn expand(args: Args, mut function: ItemFn) -> syn::Result<TokenStream> {
    let sig = &function.sig;
    if sig.constness.is_some() {
        return Err(syn::Error::new(
            sig.constness.span(),
            "#[meter] cannot be used on a `const fn`: recording is a side effect",
        ));
    }
    let Some(resource) = args.resource.clone() else {
        return Err(syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[meter] needs a resource, e.g. #[meter(resource = \"billing\")]",
        ));
    };
    let feature = args
        .feature
        .clone()
        .unwrap_or_else(|| LitStr::new(&sig.ident.to_string(), sig.ident.span()));
    let krate = args
        .krate
        .clone()
        .map_or_else(|| quote!(::metering), |path| quote!(#path));
    let private = quote!(#krate::__private);

    let tenant = match (&args.tenant, has_tenant_id_arg(&function)) {
        (Some(expr), _) => quote_spanned!(expr.span()=> #private::tenant(&(#expr))),
        (None, true) => quote!(#private::tenant(&(tenant_id))),
        (None, false) => {
            return Err(syn::Error::new(
                sig.ident.span(),
                "#[meter] needs a tenant: add an argument named `tenant_id` \
                 or the option `tenant = <expression>`",
            ));
        }
    };
    let quantity = match &args.quantity {
        Some(expr) => quote_spanned!(expr.span()=> #private::quantity(#expr)),
        None => quote!(#private::quantity(1u64)),
    };
    let metadata = if args.metadata.is_empty() {
        quote!(::core::option::Option::None)
    } else {
        let inserts = args.metadata.iter().map(|(key, expr)| {
            let key = key.to_string();
            quote_spanned!(expr.span()=>
                __metering_metadata.insert(
                    ::std::string::String::from(#key),
                    #private::metadata_value(&(#expr)),
                );
            )
        });
        quote!({
            let mut __metering_metadata = #private::MetadataMap::new();
            #(#inserts)*
            ::core::option::Option::Some(__metering_metadata)
        })
    };

    let on = match args.on {
        Some((on, _)) => on,
        None if returns_result(&sig.output) => On::Success,
        None => On::Always,
    };
    let admitted = match (on, args.on) {
        (On::Always, _) => quote!(true),
        (On::Success, Some((_, span))) => {
            quote_spanned!(span=> #private::Outcome::is_success(&__metering_output))
        }
        (On::Success, None) => quote!(#private::Outcome::is_success(&__metering_output)),
    };

    let annotation = match &sig.output {
        ReturnType::Type(_, ty) if !mentions_impl(ty) => quote!(: #ty),
        ReturnType::Type(..) => quote!(),
        ReturnType::Default => quote!(: ()),
    };
    let block = &function.block;
    let run = if sig.asyncness.is_some() {
        quote!(async move #block.await)
    } else {
        // A closure, so that `return` and `?` in the body come back here.
        quote!((move || #block)())
    };

    let body = quote!({
        // One atomic load when no recorder is installed; nothing else is computed then.
        // The options are evaluated before the body, which may move the arguments.
        let __metering_pending = match #private::installed_recorder() {
            ::core::option::Option::Some(__metering_recorder) => {
                ::core::option::Option::Some(#private::Pending {
                    recorder: __metering_recorder,
                    tenant: #tenant,
                    quantity: #quantity,
                    metadata: #metadata,
                })
            }
            ::core::option::Option::None => ::core::option::Option::None,
        };
        #[allow(clippy::redundant_closure_call)]
        let __metering_output #annotation = #run;
        if let ::core::option::Option::Some(__metering_pending) = __metering_pending {
            if #admitted {
                __metering_pending.record(#resource, #feature);
            }
        }
        __metering_output
    });
    function.block = syn::parse2(body)?;
    Ok(quote!(#function))
}
