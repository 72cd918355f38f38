-- Statement files uploaded in the web app, kept between the preview and the commit (issue 10);
-- documented in docs/schema.md. In the database rather than on local disk so that any replica can
-- answer the commit. Removed on commit, and by the next upload once a day old.
create table web_uploads (
    id          blob    not null primary key check (length(id) = 16),
    user_id     blob    not null references users (id) on delete cascade,
    filename    text    check (filename is null or length(filename) <= 255),
    account     text    check (account is null or length(account) <= 100),
    content     blob    not null,
    created_at  text    not null
);
create index idx_web_uploads_user_created on web_uploads (user_id, created_at);

-- The ledger's stamp (count and latest change of a user's transactions), which tells the caches of
-- derived views (recurring payments, forecast inputs) whether anything changed: an index-only read.
create index idx_transactions_user_updated on transactions (user_id, updated_at);
