//! Usage as files: events as NDJSON or CSV, and aggregate and meter answers as CSV.
//!
//! Decimals are written as their exact text, times as RFC 3339 in UTC (`Z`, microseconds at
//! most); CSV follows RFC 4180 (a header row, fields quoted when they hold a comma, quote or
//! line break). Event metadata goes into one CSV column as its JSON text.

use std::fmt;
use std::str::FromStr;

use crate::event::Event;
use crate::meter::MeterReport;
use crate::query::AggregateReport;
use crate::time::format_rfc3339;

/// The columns of an event export in CSV, in order.
pub const EVENT_CSV_COLUMNS: [&str; 8] = [
    "id",
    "tenant_id",
    "resource",
    "feature",
    "quantity",
    "timestamp",
    "created_at",
    "metadata",
];

/// The columns a CSV export of voided events adds after [`EVENT_CSV_COLUMNS`].
pub const CORRECTION_CSV_COLUMNS: [&str; 3] = ["amends", "voided_at", "void_reason"];

/// The file format of an event export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(rename_all = "lowercase"))]
pub enum ExportFormat {
    /// One JSON event per line (`application/x-ndjson`).
    #[default]
    Ndjson,
    /// Comma-separated values with a header row (`text/csv`).
    Csv,
}

impl ExportFormat {
    /// The name used in `format=`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Ndjson => "ndjson",
            ExportFormat::Csv => "csv",
        }
    }

    /// The media type of the file.
    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Ndjson => "application/x-ndjson",
            ExportFormat::Csv => "text/csv; charset=utf-8",
        }
    }

    /// What comes before the first event: the CSV header row, nothing for NDJSON. With
    /// `corrections` (an export that includes voided events), the CSV header ends with
    /// [`CORRECTION_CSV_COLUMNS`]; NDJSON carries those fields on the events that have them.
    #[must_use]
    pub fn preamble(self, corrections: bool) -> Vec<u8> {
        match self {
            ExportFormat::Ndjson => Vec::new(),
            ExportFormat::Csv if corrections => {
                csv_record(EVENT_CSV_COLUMNS.into_iter().chain(CORRECTION_CSV_COLUMNS))
            }
            ExportFormat::Csv => csv_record(EVENT_CSV_COLUMNS),
        }
    }

    /// Appends `events` to `out` in this format, with the correction columns when
    /// `corrections` (as in [`ExportFormat::preamble`]).
    pub fn write_events(self, events: &[Event], corrections: bool, out: &mut Vec<u8>) {
        for event in events {
            match self {
                ExportFormat::Ndjson => {
                    // Writing an event (strings, numbers, a JSON map) to memory cannot fail.
                    if serde_json::to_writer(&mut *out, event).is_ok() {
                        out.push(b'\n');
                    }
                }
                ExportFormat::Csv => {
                    let metadata = event
                        .metadata
                        .as_ref()
                        .map(|m| serde_json::Value::Object(m.clone()).to_string())
                        .unwrap_or_default();
                    let fields = [
                        event.id.as_str(),
                        event.tenant_id.as_str(),
                        event.resource.as_str(),
                        event.feature.as_str(),
                        &event.quantity.to_string(),
                        &format_rfc3339(event.timestamp),
                        &format_rfc3339(event.created_at),
                        &metadata,
                    ];
                    if corrections {
                        let voided_at = event.voided_at.map(format_rfc3339).unwrap_or_default();
                        out.extend(csv_record(fields.into_iter().chain([
                            event.amends.as_ref().map_or("", |a| a.as_str()),
                            &voided_at,
                            event.void_reason.as_deref().unwrap_or(""),
                        ])));
                    } else {
                        out.extend(csv_record(fields));
                    }
                }
            }
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExportFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ndjson" => Ok(ExportFormat::Ndjson),
            "csv" => Ok(ExportFormat::Csv),
            other => Err(format!("unknown format `{other}`; use ndjson or csv")),
        }
    }
}

/// One CSV record (RFC 4180 quoting, `\r\n` ending).
fn csv_record<I, T>(fields: I) -> Vec<u8>
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    // Writing to memory cannot fail.
    let _ = writer.write_record(fields);
    writer.into_inner().unwrap_or_default()
}

/// An aggregate answer as CSV: `window_start,window_end,window_type,tenant_id,resource,
/// feature,total_quantity,event_count`, ungrouped dimensions empty.
#[must_use]
pub fn aggregates_csv(report: &AggregateReport) -> Vec<u8> {
    let mut out = csv_record([
        "window_start",
        "window_end",
        "window_type",
        "tenant_id",
        "resource",
        "feature",
        "total_quantity",
        "event_count",
    ]);
    for row in &report.aggregates {
        out.extend(csv_record([
            format_rfc3339(row.window_start),
            format_rfc3339(row.window_end),
            row.window_type.as_str().to_owned(),
            row.tenant_id
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_default(),
            row.resource
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_default(),
            row.feature
                .as_ref()
                .map(|f| f.to_string())
                .unwrap_or_default(),
            row.total_quantity.to_string(),
            row.event_count.to_string(),
        ]));
    }
    out
}

/// A meter's answer as CSV: `window_start,window_end`, one column per grouped key (empty
/// for a missing value), then `value,event_count`.
#[must_use]
pub fn meter_csv(report: &MeterReport, group_by: &[String]) -> Vec<u8> {
    let mut header = vec!["window_start".to_owned(), "window_end".to_owned()];
    header.extend(group_by.iter().cloned());
    header.extend(["value".to_owned(), "event_count".to_owned()]);
    let mut out = csv_record(&header);
    for row in &report.data {
        let mut fields = vec![
            format_rfc3339(row.window_start),
            format_rfc3339(row.window_end),
        ];
        fields.extend(row.group.iter().map(|(_, v)| v.clone().unwrap_or_default()));
        fields.extend([row.value.to_string(), row.event_count.to_string()]);
        out.extend(csv_record(&fields));
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::event::{EventId, Feature, Resource, TenantId};
    use crate::quantity::Quantity;

    fn event(metadata: Option<serde_json::Value>) -> Event {
        let at = Utc
            .with_ymd_and_hms(2025, 11, 20, 10, 0, 0)
            .single()
            .expect("a time");
        Event {
            id: EventId::new("e-1").expect("id"),
            tenant_id: TenantId::new("org, \"one\"").expect("tenant"),
            resource: Resource::new("api").expect("resource"),
            feature: Feature::new("call").expect("feature"),
            quantity: "999999999999999.999999999".parse::<Quantity>().expect("q"),
            timestamp: at,
            metadata: metadata.and_then(|m| m.as_object().cloned()),
            created_at: at,
            amends: None,
            voided_at: None,
            void_reason: None,
        }
    }

    #[test]
    fn csv_quotes_as_rfc_4180_and_keeps_decimals_exact() {
        let mut out = ExportFormat::Csv.preamble(false);
        ExportFormat::Csv.write_events(
            &[event(Some(json!({"note": "a,b\nc"}))), event(None)],
            false,
            &mut out,
        );
        let text = String::from_utf8(out).expect("UTF-8");
        assert_eq!(
            text,
            "id,tenant_id,resource,feature,quantity,timestamp,created_at,metadata\r\n\
             e-1,\"org, \"\"one\"\"\",api,call,999999999999999.999999999,2025-11-20T10:00:00Z,2025-11-20T10:00:00Z,\"{\"\"note\"\":\"\"a,b\\nc\"\"}\"\r\n\
             e-1,\"org, \"\"one\"\"\",api,call,999999999999999.999999999,2025-11-20T10:00:00Z,2025-11-20T10:00:00Z,\r\n"
        );
    }

    #[test]
    fn csv_of_voided_events_carries_the_corrections() {
        let mut voided = event(None);
        voided.voided_at = Some(voided.timestamp);
        voided.void_reason = Some("twice, sorry".to_owned());
        let mut replacement = event(None);
        replacement.amends = Some(EventId::new("e-0").expect("id"));
        let mut out = ExportFormat::Csv.preamble(true);
        ExportFormat::Csv.write_events(&[voided, replacement], true, &mut out);
        let text = String::from_utf8(out).expect("UTF-8");
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "id,tenant_id,resource,feature,quantity,timestamp,created_at,metadata,amends,voided_at,void_reason"
        );
        assert!(
            lines[1].ends_with(",,,2025-11-20T10:00:00Z,\"twice, sorry\""),
            "{}",
            lines[1]
        );
        assert!(lines[2].ends_with(",,e-0,,"), "{}", lines[2]);
    }

    #[test]
    fn ndjson_writes_one_exact_event_per_line() {
        let mut out = ExportFormat::Ndjson.preamble(false);
        ExportFormat::Ndjson.write_events(
            &[event(None), event(Some(json!({"k": 1})))],
            false,
            &mut out,
        );
        let text = String::from_utf8(out).expect("UTF-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].contains("\"quantity\":999999999999999.999999999"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with("\"metadata\":{\"k\":1},\"created_at\":\"2025-11-20T10:00:00Z\"}"),
            "{}",
            lines[1]
        );
        assert!("tsv".parse::<ExportFormat>().is_err());
    }
}
