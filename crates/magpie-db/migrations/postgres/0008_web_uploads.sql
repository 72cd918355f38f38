-- Statement files uploaded in the web app, kept between the preview and the commit (issue 10);
-- documented in docs/schema.md. In the database rather than on local disk so that any replica can
-- answer the commit. Removed on commit, and by the next upload once a day old.
create table web_uploads (
    id          uuid          primary key,
    user_id     uuid          not null,
    filename    varchar(255),
    account     varchar(100),
    content     bytea         not null,
    created_at  timestamp     not null,
    constraint fk_web_uploads_user foreign key (user_id) references users (id) on delete cascade
);
create index idx_web_uploads_user_created on web_uploads (user_id, created_at);

-- The ledger's stamp (count and latest change of a user's transactions), which tells the caches of
-- derived views (recurring payments, forecast inputs) whether anything changed: an index-only read.
create index idx_transactions_user_updated on transactions (user_id, updated_at);
