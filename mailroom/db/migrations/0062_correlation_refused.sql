-- The customer guard (docs/route.md): correlation candidates whose stored thread belongs to
-- another customer are refused; what was refused, and why, stays on the activity for review.
ALTER TABLE email_activities ADD COLUMN correlation_refused text NOT NULL DEFAULT '';
CREATE INDEX email_activities_refused ON email_activities (updated_at)
    WHERE correlation_refused <> '';
