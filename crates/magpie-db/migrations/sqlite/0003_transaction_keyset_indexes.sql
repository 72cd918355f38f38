-- Keyset pagination over live transactions (issue 4): the list is ordered by (date, id) or (amount, id)
-- and resumes after the last row of the previous page, so each page is an index range scan that stops
-- after `limit` rows whatever the page number. Partial on `deleted_at is null` because soft-deleted rows
-- are excluded from every list (documented in docs/schema.md).
--
-- The date index also carries type, category and amount so that period reports (sums by category,
-- month, week or type) are answered from the index alone, without visiting the table.
create index idx_transactions_user_live_date on transactions (user_id, date, id, type, category, amount) where deleted_at is null;
create index idx_transactions_user_live_amount on transactions (user_id, amount, id) where deleted_at is null;
