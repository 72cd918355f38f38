-- Statement file imports (issue 5); see migrations/postgres/0004_imports.sql and docs/schema.md.

create table import_batches (
    id           blob    not null primary key check (length(id) = 16),
    user_id      blob    not null,
    filename     text    check (length(filename) <= 255),
    format       text    not null,
    encoding     text    check (length(encoding) <= 40),
    status       text    not null default 'COMMITTED',
    rows_read    integer not null,
    imported     integer not null,
    duplicates   integer not null,
    skipped      integer not null,
    errors       integer not null,
    created_at   text    not null,
    reverted_at  text,
    constraint fk_import_batches_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_import_batches_status check (status in ('COMMITTED', 'REVERTED')),
    constraint ck_import_batches_format check (format in ('csv', 'ofx', 'qif', 'camt', 'mt940'))
) strict;
create index idx_import_batches_user_created on import_batches (user_id, created_at);

alter table transactions add column import_batch_id blob references import_batches (id) on delete set null;
alter table transactions add column external_key text check (length(external_key) <= 40);
alter table transactions add column fingerprint text check (length(fingerprint) <= 40);
create unique index idx_transactions_user_external_key on transactions (user_id, external_key) where external_key is not null;
create unique index idx_transactions_user_fingerprint on transactions (user_id, fingerprint) where fingerprint is not null;
create index idx_transactions_import_batch on transactions (import_batch_id) where import_batch_id is not null;
