-- Retention of alerting: deliveries that are no longer pending are found by when they were
-- written (`Store::prune_alerts`); marks already are, by `alert_marks_by_end`.
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (created_at)
    WHERE status <> 'pending';
