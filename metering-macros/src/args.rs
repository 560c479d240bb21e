//! Parsing and checking the options of `#[meter(...)]`.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::{Expr, Ident, LitStr, Path};

/// When the call is metered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum On {
    Success,
    Always,
}

/// The options, as written.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) resource: Option<LitStr>,
    pub(crate) feature: Option<LitStr>,
    pub(crate) quantity: Option<Expr>,
    pub(crate) tenant: Option<Expr>,
    pub(crate) metadata: Vec<(Ident, Expr)>,
    pub(crate) on: Option<(On, Span)>,
    pub(crate) krate: Option<Path>,
}

const OPTIONS: &str = "resource, feature, quantity, tenant, metadata, on, crate";

/// Checks a resource or feature name as the server will: 1 to 255 characters after
/// trimming, no control characters.
fn check_name(lit: &LitStr, what: &str) -> syn::Result<()> {
    let value = lit.value();
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(syn::Error::new(
            lit.span(),
            format!("`{what}` must not be empty"),
        ));
    }
    if trimmed.chars().count() > 255 {
        return Err(syn::Error::new(
            lit.span(),
            format!("`{what}` must be at most 255 characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(syn::Error::new(
            lit.span(),
            format!("`{what}` must not contain control characters"),
        ));
    }
    Ok(())
}

fn once<T>(
    slot: &mut Option<T>,
    value: T,
    meta: &ParseNestedMeta<'_>,
    name: &str,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(meta.error(format!("`{name}` is given twice")));
    }
    *slot = Some(value);
    Ok(())
}

impl Args {
    /// Takes one `key = value` or `metadata(...)` option.
    pub(crate) fn parse_option(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        // Keywords such as `crate` come through as plain identifiers here.
        let Some(name) = meta.path.get_ident().map(ToString::to_string) else {
            return Err(meta.error(format!("unknown option; expected one of: {OPTIONS}")));
        };
        match name.as_str() {
            "resource" | "feature" => {
                let lit: LitStr = meta.value()?.parse().map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        format!("`{name}` takes a string literal, e.g. {name} = \"billing\""),
                    )
                })?;
                check_name(&lit, &name)?;
                let slot = if name == "resource" {
                    &mut self.resource
                } else {
                    &mut self.feature
                };
                once(slot, lit, meta, &name)
            }
            "quantity" => {
                let expr: Expr = meta.value()?.parse()?;
                once(&mut self.quantity, expr, meta, "quantity")
            }
            "tenant" => {
                let expr: Expr = meta.value()?.parse()?;
                once(&mut self.tenant, expr, meta, "tenant")
            }
            "metadata" => {
                if !self.metadata.is_empty() {
                    return Err(meta.error("`metadata` is given twice"));
                }
                meta.parse_nested_meta(|entry| {
                    let Some(key) = entry.path.get_ident().cloned() else {
                        return Err(entry.error(
                            "metadata keys are plain names, e.g. metadata(user = user_id)",
                        ));
                    };
                    if self.metadata.iter().any(|(k, _)| *k == key) {
                        return Err(entry.error(format!("metadata key `{key}` is given twice")));
                    }
                    let expr: Expr = entry.value()?.parse()?;
                    self.metadata.push((key, expr));
                    Ok(())
                })
            }
            "on" => {
                let lit: LitStr = meta.value()?.parse().map_err(|e| {
                    syn::Error::new(e.span(), "`on` takes \"success\" or \"always\"")
                })?;
                let on = match lit.value().as_str() {
                    "success" => On::Success,
                    "always" => On::Always,
                    other => {
                        return Err(syn::Error::new(
                            lit.span(),
                            format!("`on` must be \"success\" or \"always\", not {other:?}"),
                        ));
                    }
                };
                once(&mut self.on, (on, lit.span()), meta, "on")
            }
            "crate" => {
                let value = meta.value()?;
                let path: Path = if value.peek(LitStr) {
                    let lit: LitStr = value.parse()?;
                    lit.parse()?
                } else {
                    value.parse()?
                };
                once(&mut self.krate, path, meta, "crate")
            }
            other => Err(syn::Error::new_spanned(
                &meta.path,
                format!("unknown option `{other}`; expected one of: {OPTIONS}"),
            )),
        }
    }
}
